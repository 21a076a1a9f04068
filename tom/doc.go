// Package tom implements Magma's Trace-of-Mark (ToM) pipeline, paper
// Algorithm 2, on gocv (OpenCV 4.6): frames from a video or an image folder,
// content-based shot detection, an s x s grid of CoTracker-style query
// points tracked by a Tracker (CoTracker3 where the binary has it and
// weights are given, see NewTracker; otherwise the robust pyramidal
// Lucas-Kanade fallback, whose forward-backward and appearance checks lose a
// point for good once it is occluded or dragged), the visibility
// filter, camera-motion detection and removal by RANSAC homography,
// foreground/background classification, K-Means selection of marks, SoM
// on the first frame, and the exact ToM training strings.
//
//	func SourceConfig(src Source) Config // official settings of SourceDemo, SourceVideo, SourceRobot
//	func DefaultConfig() Config          // the demo's: Eta 0.5 px, Epsilon 2 px, k+ [2,5], k- [6,14]
//	func Run(frames []imaging.Image, cfg Config) (*Result, error)
//	func RunFile(path string, start int, cfg Config) (*Result, error)
//	func ReadFrames(path string, start, n int) (*Clip, error)
//	func DetectShots(frames []imaging.Image, threshold float64) ([]int, error)
//	func GridQueries(w, h, s int) []som.Point
//	type Tracker interface{ Track(frames []imaging.Image, queries []som.Point) (*Tracks, error) }
//	func NewTracker(name, weights string) (Tracker, string, error) // --tracker cotracker|lk, --tracker-weights; the string is LKWarning or ""
//	func RegisterCoTracker(f CoTrackerFactory)                     // tom/cotracker's init; else "cotracker" is ErrNoCoTracker
//	type LKTracker struct{ WinSize, Levels, CheckWinSize, PatchRadius int; FBMaxError, MinNCC, MaxPatchDiff float64; NoAppearance bool }
//	type Tracks struct{ Points [][]som.Point; Visible [][]bool; ThroughOcclusion bool } // [t][n]
//	type Mark struct{ ID int; Foreground bool; Points [][2]float64; Visible []bool }
//	type Result struct{ Source; Width, Height, FramesUsed, StartFrame, Steps int; CameraMotion bool; Marks []Mark; SoMText, ToMText, ToMQuestion string; Warnings []string; ... }
//	func ToMQuestion(task string, steps int, ids []int, robot bool) string
//	func ToMAnswer(marks []Mark, w, h int, rules AnswerRules) (string, int)
//	func DrawTraces(img imaging.Image, marks []Mark) (imaging.Image, error)
//
// Per-source rules, as microsoft/Magma applies them (lengths are
// visual_trace_length with image_size (1,1): the mean displacement in
// pixels over all consecutive steps of the frames as tracked):
//
//	source  code                            camera (>80% over)  foreground  k+     k-      start / horizon
//	demo    tools/som_tom/demo.py           0.5 px              2 px        [2,5]  [6,14]  frame 0, Future steps (frames resized to height 512 by the CLI)
//	video   data/conversations.py           1 px (forced: ego)  3 px        [2,5]  [6,14]  random before 50% of the motion, to the clip's end
//	robot   data/openx_magma/data_utils.py  1 px                1 px        [2,4]  [4,9]   the step's frame, start+16
//
// The foreground/background split uses the lengths after camera-motion
// removal (the training code recomputes them; the demo reuses the lengths
// measured before removal, which under a pan makes every trace
// foreground, so the training rule is used for all sources). K-Means runs
// with min(k, traces) clusters and one uniformly drawn member of each
// cluster becomes a mark (Magma's cluster_traces_kmeans); ids are a random
// permutation of 1..K (som_prompting). Video and robot answers drop points
// closer than 2 grid units and traces slower than 1 grid unit per step;
// video also drops traces left with T/4 points or fewer; when at most one
// trace is foreground (video, robot) or none survives, there is no ToM
// answer and Result.Warnings says why (static clip, or query points on
// texture-less regions where nothing can be tracked).
//
// Visibility follows the tracker. A tracker that estimates occluded
// positions (CoTracker, Tracks.ThroughOcclusion) gets Magma's rules as
// they are: the visibility filter, then lengths and homographies on every
// position. For LK, whose lost points have no position, invisible steps
// hold the last visible position (in the start frame's coordinates after
// camera-motion removal), lengths average the visible steps and the
// homography is fitted on visible points only.
//
// Documented behaviour on bad input: fewer than Future+1 frames is
// ErrTooShort, a shot cut inside them ErrShotBoundary, an unreadable path
// ErrUnreadable, an empty video ErrNoFrames, no trace visible in half the
// steps ErrNoTraces. With LK, invisible positions in Mark.Points hold the
// last visible position (Visible says which steps were seen).
package tom
