// Package eval runs Magma's benchmarks: ScreenSpot grounding (the
// paper's Table 2: SS-Mobile / SS-Desktop / SS-Web, text/icon) in the three
// published layouts, Mind2Web with SeeClick's protocol (Table 4), offline
// LIBERO, and the question-answering benchmarks - VQAv2, TextVQA, POPE
// (Table 2), NextQA and VideoMME (video QA), AITW (mobile navigation) -
// through RunQA with the official metrics (vqa.go, pope.go, videoqa.go,
// aitw.go, each documenting its rules; readers in qa_bench.go; answer
// files in each benchmark's published format, and results_official.json
// for VQAv2/TextVQA, in qa_predictions.go).
//
// # ScreenSpot family
//
// Load reads a directory in one of three layouts, detected from the file
// names (DetectFormat) or given (--format):
//
//   - screenspot (SeeClick): screenspot_{mobile,desktop,web}.json, records
//     {"img_filename", "instruction", "bbox": [x,y,w,h] px, "data_type":
//     "text"|"icon", "data_source"}; images in screenspot_imgs/ (or images/,
//     imgs/, the directory itself);
//   - v2: the same schema in screenspot_{mobile,desktop,web}_v2.json,
//     images in screenspotv2_image/ (or the same fallbacks);
//   - pro (ScreenSpot-Pro): annotations/*.json (one per application),
//     "bbox" [x1,y1,x2,y2] px, "img_size" [w,h], "ui_type", "platform",
//     "application", "group"; images in images/.
//
// Files may be JSON arrays or JSON lines. The table cell of a record is
// "platform/type" (ScreenSpot, v2) or "group/type" (Pro).
//
// Protocol (RunScreenSpot), per record: decode the screenshot and check the
// ground-truth box against it; candidate boxes from a proposals file
// ({img_filename: [[x1,y1,x2,y2], ...]}, OmniParser-like, as the paper used)
// or from a som.Proposer; SoM marks drawn with som.DrawBoxes (ids 1..K in
// proposal order); the prompt som.UIAgentPrompt(instruction) with the marked
// screenshot; greedy generation; action.ParseAnswer; the click is the answered
// mark's box centre (a mark that was drawn wins over a point unless
// PreferPoint), else the answer's point. Correct when the click lies in the
// ground-truth box, edges inclusive (som.Box.Contains). An answer with no
// usable mark or point is wrong ("unparsed").
//
// Answer forms (action.ParseAnswer, package model/action): mark ids
// "Mark: 7" / "Mark 7" / "mark #7"; points "(0.23, 0.51)" / "[0.23,0.51]" as 0-1 fractions; integer pairs
// "[59,131]" on Magma's 256 grid (click = cell centre); four-number lists as
// boxes; <box>x1,y1,x2,y2</box>, <box>(x1,y1),(x2,y2)</box> and Qwen's
// <|box_start|>...<|box_end|> on 0..1000 (action.ParseOptions.BoxScale,
// --box-scale 256 for the grid) or as fractions when all numbers are decimals <= 1.
// Ints vs floats: a group containing a decimal point is fractions and must
// lie in [0,1]; a group of integers outside box tags is the 256 grid and
// must lie in 0..255; nothing else is guessed (pixels are never accepted in
// text, because "[120,80]" could be either). The first point form in the
// text wins; the first mark id wins.
//
// Scoring: Results.Cells are accuracies in [0,1] per non-empty cell,
// Average is their unweighted mean (SeeClick's ScreenSpot "average"),
// Overall the micro accuracy. A record that cannot be evaluated (malformed
// JSON item or line, missing image, box outside the image, unknown element
// type, model error) is reported in ErrorRecords with its index and counted
// in Errors; when its cell is known it also counts as wrong in that cell, so
// errors can only lower accuracy. The run always continues.
//
// Report (Options.OutDir): results.json (Results), predictions.jsonl (one
// Prediction per record: answer, mark, click point in pixels, correct,
// error) and failures/*.png (DrawFailure: the marked screenshot with the
// ground truth in green, the answered mark's box in amber, the click as a
// magenta cross, and a caption). Options.Predictions scores an existing
// file instead of running a model: JSON lines {"img_filename",
// "instruction", "point": [x,y] px} or {"answer": raw text, optional
// "marks": {"id": [x1,y1,x2,y2]}}, matched to records by (img_filename,
// instruction); a run's own predictions.jsonl scores to the same results.
//
// # Mind2Web
//
// LoadMind2Web reads SeeClick's mind2web_data_test_{task,website,domain}.json
// (episodes with actions {action_uid, operation {original_op, value}, bbox
// {x,y,width,height}}), screenshots {annotation_id}-{action_uid}.jpg in
// mind2web_images/. RunMind2Web uses the same machinery per step with
// Mind2WebPrompt (task + last four ground-truth actions); ParseWebAction
// reads SeeClick's {"action_type": 4|3|2, "click_point": (x,y), "value"}
// or "TYPE \"value\" ... Mark: 5". Ele.Acc = click in the element box, Op.F1
// = token-set F1 of "OP [value]" (HOVER and ENTER count as CLICK), Step SR =
// element right and Op.F1 = 1; reported per split as macro averages over
// episodes (Mind2Web's convention) with micro values alongside.
//
// WriteSynthetic writes a synthetic fixture (coloured widgets) in any of
// the layouts, for tests and scripts/bench/eval.sh.
package eval
