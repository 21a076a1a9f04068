// Package som implements Magma's Set-of-Mark (SoM) prompting on gocv
// (OpenCV 4.6): numbered marks drawn on an image (paper Algorithm 1), a
// classical UI-element proposer, and the exact SoM / UI-grounding training
// strings. It takes and returns vision.Image (RGB); gocv Mats stay inside.
//
// Drawing:
//
//	func DrawBoxes(img vision.Image, boxes []Box, opt Options) (*Result, error)
//	func DrawPoints(img vision.Image, pts []Point, opt Options) (*Result, error)
//	func ValidateBoxes(boxes []Box, w, h int) ([]Box, error)
//	func LabelHeight(w, h int) int
//	func WriteImage(path string, img vision.Image) error
//	type Box struct{ X1, Y1, X2, Y2 float64 }   // pixels
//	type Point struct{ X, Y float64 }           // pixels
//	type Options struct{ Color [3]uint8; LineWidth int; Shuffle bool; Seed int64; IDs []int }
//	type Region struct{ ID, Index int; Box Box; IsPoint bool; Point Point; Label Box }
//	type Result struct{ Image vision.Image; Marks []Region } // Marks sorted by ID
//	func (r *Result) GridMarks() []Mark
//
// Proposals:
//
//	type Proposer interface{ Propose(img vision.Image) ([]Box, error) }
//	func NewClassicalProposer() *ClassicalProposer
//
// Training text (coordinates on the 256 grid, GridCoord = int(256*v/extent)
// clamped to 0..255, so v = extent gives 255):
//
//	const SoMQuestion  // "The image is split into 256x256 grids, and labeled with numeric marks.\nPlease locate all the numerical marks in the image."
//	func SoMAnswer(marks []Mark) string               // "Mark 3 at [x,y]. Mark 7 at [x,y]"
//	func UIAgentPrompt(task string) string
//	func UIGroundingAnswer(x, y float64, w, h, id int) string // "(0.42,0.17) Mark: 3" (SeeClick fractions)
//	func FormatFrac(x, y float64, w, h int) string             // "(0.42,0.17)"
//	func FormatFracBox(b Box, w, h int) string                 // "(0.10,0.20,0.30,0.40)"
//	func MarkSuffix(id int) string                    // " Mark: 3"
//	func StripMarkIDs(s string) string
//	func ParseMarkID(s string) (int, bool)
//	func GridCoord(v float64, extent int) int
//	func GridPoint(x, y float64, w, h int) (int, int)
//	func ParseBoxesJSON(data []byte) ([]Box, error)   // [{"bbox":[x1,y1,x2,y2]},...]
//	func ParsePointsJSON(data []byte) ([]Point, error) // [{"point":[x,y]},...] or [[x,y],...]
//
// plus the lower-level coordinate helpers in coords.go (DequantizeCoord, CellCenter,
// FormatPoint, FormatTrace, FormatMarks, ParseMarks, ParsePoints, Mark).
//
// Label sizes follow Magma: box labels as MarkHelper (agents/ui_agent/
// util/som.py: font from 20 until "555" is min(30, 4% of the short side)
// tall, LabelHeight), point marks as som_prompting (data/utils/som_tom.py:
// text 3% of the width, PointLabelHeight); glyphs are OpenCV's Hershey
// font sized to those boxes, not Arial.
//
// Label placement follows _find_least_overlapping_corner: 8 candidate
// positions just outside the box (above-left, above-right, right-top,
// right-bottom, below-right, below-left, left-bottom, left-top); among the
// candidates fully inside the image the one whose worst case over all
// other boxes and the labels already drawn, max(intersection area - 0.0001
// * nearest-corner distance), is smallest wins. When no outside candidate
// fits (a box filling the image) the 4 inside corners are used (Magma
// would draw off the image).
//
// Numbering: ids 1..K by default (paper Algorithm 1 "str(idx + 1)", the
// video/robot marks of som_prompting); Options.ZeroBased gives 0..K-1 as
// Magma's UI agent draws them (plot_boxes_with_marks: text = str(idx),
// looked up in OmniParser's 0-based boxes). Drawing is deterministic;
// Options.Shuffle draws the id order from Options.Seed.
package som
