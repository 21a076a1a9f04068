package data

import "path/filepath"

// sourceBuilder opens a recipe's source; abs makes its paths absolute (they
// are relative to the recipe, or to the synthetic data folder).
type sourceBuilder func(env *SampleBuilder, sc SourceConfig, abs func(string) string) (Source, error)

// sourceTable is every source type a recipe accepts (a source's type:),
// with what opens it, in the order InspectTypes lists them: the one list of
// source types (Inspect opens each of them, TestSourceTable).
var sourceTable = []struct {
	name string
	open sourceBuilder
}{
	{"llava", opener(func(env *SampleBuilder, name, path string, o llavaOptions) (*LLaVASource, error) {
		return NewLLaVASource(env, name, path, o.ImageFolder)
	}, func(o *llavaOptions, abs func(string) string) { o.ImageFolder = abs(o.ImageFolder) })},
	{"ui", opener(NewUISource, func(o *UIOptions, abs func(string) string) { o.ImageFolder = abs(o.ImageFolder) })},
	{"video", opener(NewVideoSource, func(o *VideoOptions, abs func(string) string) {
		o.VideoFolder, o.TrackerWeights = abs(o.VideoFolder), abs(o.TrackerWeights)
	})},
	{"robot", opener(NewRobotSource, func(o *RobotOptions, abs func(string) string) {
		o.Statistics, o.TrackerWeights = abs(o.Statistics), abs(o.TrackerWeights)
	})},
	{"rlds", opener(func(env *SampleBuilder, name, path string, o RLDSOptions) (*RLDSSource, error) {
		return NewRLDSSource(env, name, filepath.Clean(path), o)
	}, func(o *RLDSOptions, abs func(string) string) { o.Statistics = abs(o.Statistics) })},
	{"magma_tom", opener(NewMagmaToMSource, func(o *MagmaToMOptions, abs func(string) string) {
		o.ImageFolder, o.VideoFolder = abs(o.ImageFolder), abs(o.VideoFolder)
	})},
	{"magma_som", opener(NewMagmaSoMSource, func(o *MagmaSoMOptions, abs func(string) string) { o.ImageFolder = abs(o.ImageFolder) })},
}

// sourceTypes finds a source type's builder by name.
var sourceTypes = func() map[string]sourceBuilder {
	m := make(map[string]sourceBuilder, len(sourceTable))
	for _, t := range sourceTable {
		m[t.name] = t.open
	}
	return m
}()

// InspectTypes are the source types Inspect opens: every type a recipe
// accepts.
var InspectTypes = func() []string {
	n := make([]string, len(sourceTable))
	for i, t := range sourceTable {
		n[i] = t.name
	}
	return n
}()

// sourceTypeNames are the source types in sorted order (for errors).
func sourceTypeNames() []string {
	n := append([]string(nil), InspectTypes...)
	sortStrings(n)
	return n
}

// opener is the builder of a source opened by open with its options O
// decoded from the recipe's options: section; paths makes O's paths
// absolute.
func opener[O any, S Source](open func(env *SampleBuilder, name, path string, o O) (S, error), paths func(o *O, abs func(string) string)) sourceBuilder {
	return func(env *SampleBuilder, sc SourceConfig, abs func(string) string) (Source, error) {
		var o O
		if err := sc.options(&o); err != nil {
			return nil, err
		}
		paths(&o, abs)
		s, err := open(env, sc.Name, abs(sc.Path), o)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// llavaOptions are a llava source's options (an alias: a misspelt option's
// error names the struct as it was).
type llavaOptions = struct {
	ImageFolder string `yaml:"image_folder"`
}
