// Package imaging decodes images (gocv: PNG, JPEG, WebP, with size checks
// before any pixel is decoded) and implements the anyres "crop"
// preprocessing of Magma's image processor: grid choice, PyTorch-exact
// bilinear resize, CLIP-style normalisation and base x base crops, laid out
// channels-last as the ConvNeXt trunk's input.
//
// It is a leaf: it imports gocv and the standard library only, so som, tom
// and data use images without depending on the graph engine. The model's
// own mean/std come from its preprocessor_config.json
// (model.PreprocessorConfig.Preprocess).
package imaging
