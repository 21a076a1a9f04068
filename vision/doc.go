// Package vision is Magma's vision tower: the ConvNeXt trunk (timm layout
// and tensor names) as a Gorgonia graph on channels-last activations
// [N*H*W, C] built from the kernels package. Decoding images and Magma's
// anyres-crop preprocessing live in the leaf package vision/imaging, so that
// packages that only need images (som, tom, data) do not pull in the graph
// engine.
//
// Typical use:
//
//	img, err := imaging.DecodeImage(path)
//	px, err := imaging.Preprocess(img, cfg.ImageSize, cfg.MaxNumCrops, imaging.CLIPMean, imaging.CLIPStd)
//	trunk, err := vision.NewConvNeXt(cfg) // then bind weights by their `weights` tags
//	feats, grid, err := trunk.Encode(px)  // [crops*(S/32)², Dims[3]]
package vision
