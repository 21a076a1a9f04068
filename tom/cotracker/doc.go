// Package cotracker is CoTracker3 (Karaev et al., "CoTracker3: Simpler and
// Better Point Tracking by Pseudo-Labelling Real Videos"), the offline and
// online models published by facebookresearch/co-tracker, as Gorgonia
// graphs on the project's executor (package kernels), with the official
// predictors' pre- and post-processing. It implements tom.Tracker.
//
// Weights bind by the official state-dict names (fnet.*, corr_mlp.*,
// updateformer.*; a {"model": ...} wrapper is accepted) from the
// published scaled_offline.pth / scaled_online.pth, read by the safe
// PyTorch reader model/pth (Load, LoadPredictor, LoadModel). Binding is
// strict like load_state_dict: a missing tensor, a wrong shape, an
// unexpected tensor or the other variant's time_emb is an error naming the
// file and the tensor.
//
// The model (model.go, layers.go, forward.go) on channels-last activations:
//
//   - fnet, the BasicEncoder CNN: 7x7/2 conv, four stages of residual
//     blocks with instance norms, the stage outputs resized to 1/4 and
//     fused by a 3x3 and a 1x1 conv → 128 channels at stride 4, L2
//     normalised; a 4-level pyramid by 2x2 average pooling;
//   - for every track, the 7x7 support features around its query on its
//     query frame (GridSample, border padding) at each level;
//   - Config.Iters refinements (6 in the predictors): at each level the
//     7x7x7x7 correlation of the features around the current position
//     with the support features (kernels.CorrVolume) through corr_mlp; the
//     sin/cos encoding of the forward and backward motion; visibility and
//     confidence logits; the time embedding (interpolated when the clip
//     length differs from window_len); the EfficientUpdateFormer (3 time
//     blocks, each followed by attention through 64 virtual tracks) adds
//     its updates to the positions and logits;
//   - offline: one window over the whole clip (ForwardOffline); online:
//     windows of 16 frames every 8 frames, exactly as the online predictor
//     driven by the official online demo (ForwardOnline).
//
// Predictor reproduces CoTrackerPredictor and CoTrackerOnlinePredictor:
// the frames are resized (bilinear, aligned corners) to the model
// resolution (384x512), grids come from get_points_on_a_grid, given points
// get the 6x6 support grid (offline), the offline predictor replaces the
// query frame's prediction by the query, and tracks are scaled back to the
// input frames. Visibility is sigmoid(vis) > 0.9 offline and
// sigmoid(vis)·sigmoid(conf) > 0.6 online; Prediction.Model keeps the
// logits.
//
// Parity with the official code (testdata/, goldens by
// scripts/cotracker/goldens.py) is tested in golden_test.go; the model
// runs in float32 or, for the goldens, float64 (Model.SetDtype,
// Options.Float64).
package cotracker
