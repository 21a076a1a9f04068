package rlds

import (
	"fmt"
	"sort"
	"strings"
)

// Trajectory is an episode after OpenVLA's per-dataset standardisation:
// a 7-D action (EEF deltas xyz, rpy, absolute gripper with 1 = open) and
// a language instruction per kept step. Steps[i] is the original step
// index of kept step i (bridge drops the first and last steps), for the
// image lookup.
type Trajectory struct {
	Action      [][]float64
	Instruction []string
	Steps       []int
}

// Len is the number of transitions.
func (t *Trajectory) Len() int { return len(t.Action) }

// Config is one OXE dataset's mapping (OpenVLA's OXE_DATASET_CONFIGS entry
// plus its standardisation transform).
type Config struct {
	// Image, Secondary and Wrist are observation keys of the primary,
	// secondary and wrist cameras ("" when absent).
	Image, Secondary, Wrist string
	// Keys are the flattened features the transform reads (the projection
	// of an indexing pass: no images).
	Keys []string
	// Transform builds the Trajectory from an episode decoded with Keys.
	Transform func(ep *Episode) (*Trajectory, error)
	// ProprioKeys and Proprio, when set, give OpenVLA's "proprio" of every
	// step (state_obs_keys concatenated, one zero per None entry), what
	// get_dataset_statistics summarises when proprio is loaded.
	ProprioKeys []string
	Proprio     func(ep *Episode) ([][]float64, error)
}

// ImageKey is the flattened key of the primary camera.
func (c Config) ImageKey() string { return "steps/observation/" + c.Image }

// Configs are the datasets with a known mapping, by OpenVLA dataset name:
// the OXE "magic soup" mixture except furniture_bench and
// iamlab_cmu_pickup_insert (quaternion actions converted with
// tensorflow_graphics), with kuka's action and instruction mapped but not
// its zlib-compressed state, plus OpenVLA's modified LIBERO suites.
var Configs = oxeConfigs()

// Lookup finds a dataset's config by its name (the RLDS directory name).
func Lookup(name string) (Config, error) {
	c, ok := Configs[name]
	if !ok {
		var names []string
		for k := range Configs {
			names = append(names, k)
		}
		sort.Strings(names)
		return Config{}, fmt.Errorf("rlds: no feature mapping for dataset %q (known: %s)", name, strings.Join(names, ", "))
	}
	return c, nil
}

const (
	obsNLI   = "steps/observation/natural_language_instruction"
	stepLang = "steps/language_instruction"
	stepAct  = "steps/action"
)

// actionParts concatenates per-step parts into 7-D actions.
func concat(parts ...[][]float64) [][]float64 {
	T := len(parts[0])
	out := make([][]float64, T)
	for t := range out {
		for _, p := range parts {
			out[t] = append(out[t], p[t]...)
		}
	}
	return out
}

func cols(rows [][]float64, lo, hi int) [][]float64 {
	out := make([][]float64, len(rows))
	for t, r := range rows {
		a, b := lo, hi
		if a < 0 {
			a += len(r)
		}
		if b <= 0 {
			b += len(r)
		}
		out[t] = append([]float64(nil), r[a:b]...)
	}
	return out
}

func constant(T, d int, v float64) [][]float64 {
	out := make([][]float64, T)
	for t := range out {
		out[t] = make([]float64, d)
		for i := range out[t] {
			out[t][i] = v
		}
	}
	return out
}

func mapCol(rows [][]float64, f func(float64) float64) [][]float64 {
	out := make([][]float64, len(rows))
	for t, r := range rows {
		out[t] = make([]float64, len(r))
		for i, v := range r {
			out[t][i] = f(v)
		}
	}
	return out
}

func clip01(v float64) float64 { return min(max(v, 0), 1) }
func invert(v float64) float64 { return 1 - v }

// Rel2Abs is OpenVLA's rel2abs_gripper_actions: relative commands (< -0.1
// open, > 0.1 close, else no change) to absolute 1 = open / 0 = closed,
// starting from the opposite of the first command (open when none).
func Rel2Abs(a []float64) []float64 {
	th := make([]int, len(a))
	first := 0
	for i, v := range a {
		switch {
		case v < -0.1:
			th[i] = 1
		case v > 0.1:
			th[i] = -1
		}
		if first == 0 && th[i] != 0 {
			first = th[i]
		}
	}
	carry := -first
	if carry == 0 {
		carry = 1
	}
	out := make([]float64, len(a))
	for i, v := range th {
		if v != 0 {
			carry = v
		}
		out[i] = float64(carry)/2 + 0.5
	}
	return out
}

// Binarize is OpenVLA's binarize_gripper_actions: > 0.95 open (1), < 0.05
// closed (0), values in between take the next settled value (scanning
// backwards from the raw last value).
func Binarize(a []float64) []float64 {
	out := make([]float64, len(a))
	if len(a) == 0 {
		return out
	}
	carry := a[len(a)-1]
	for i := len(a) - 1; i >= 0; i-- {
		switch {
		case a[i] > 0.95:
			carry = 1
		case a[i] < 0.05:
			carry = 0
		}
		out[i] = carry
	}
	return out
}

func column(rows [][]float64, j int) []float64 {
	out := make([]float64, len(rows))
	for t, r := range rows {
		out[t] = r[j]
	}
	return out
}

func asRows(v []float64) [][]float64 {
	out := make([][]float64, len(v))
	for t, x := range v {
		out[t] = []float64{x}
	}
	return out
}

func allSteps(T int) []int {
	s := make([]int, T)
	for i := range s {
		s[i] = i
	}
	return s
}

// floats reads several keys at once, stopping at the first error.
type reader struct {
	ep  *Episode
	err error
}

func (r *reader) f(key string, dim int) [][]float64 {
	if r.err != nil {
		return nil
	}
	v, err := r.ep.Floats(key, dim)
	if err != nil {
		r.err = err
	}
	return v
}

func (r *reader) s(key string) []string {
	if r.err != nil {
		return nil
	}
	v, err := r.ep.Strings(key)
	if err != nil {
		r.err = err
	}
	return v
}

func finish(r *reader, action [][]float64, lang []string) (*Trajectory, error) {
	if r.err != nil {
		return nil, r.err
	}
	for t, a := range action {
		if len(a) != 7 {
			return nil, fmt.Errorf("step %d: standardised action has %d values, want 7", t, len(a))
		}
	}
	return &Trajectory{Action: action, Instruction: lang, Steps: allSteps(len(action))}, nil
}

// rt1Like: world_vector ‖ rotation_delta ‖ gripper(world_vector-shaped
// mapping), instruction in observation.
func rt1Like(gripper func(r *reader) [][]float64, rot bool) func(*Episode) (*Trajectory, error) {
	return func(ep *Episode) (*Trajectory, error) {
		r := &reader{ep: ep}
		wv := r.f("steps/action/world_vector", 3)
		var rd [][]float64
		if rot {
			rd = r.f("steps/action/rotation_delta", 3)
		} else {
			rd = constant(ep.T, 3, 0)
		}
		g := gripper(r)
		lang := r.s(obsNLI)
		if r.err != nil {
			return nil, r.err
		}
		return finish(r, concat(wv, rd, g), lang)
	}
}

func rel2absKey(key string, dim int) func(r *reader) [][]float64 {
	return func(r *reader) [][]float64 {
		g := r.f(key, dim)
		if r.err != nil {
			return nil
		}
		return asRows(Rel2Abs(column(g, 0)))
	}
}

func invClipKey(key string) func(r *reader) [][]float64 {
	return func(r *reader) [][]float64 {
		g := r.f(key, 1)
		if r.err != nil {
			return nil
		}
		return mapCol(g, func(v float64) float64 { return invert(clip01(v)) })
	}
}

// actionVector: steps/action is a flat vector; build the 7-D action from
// it with f; language from steps/language_instruction.
func actionVector(dim int, f func(a [][]float64) [][]float64) func(*Episode) (*Trajectory, error) {
	return func(ep *Episode) (*Trajectory, error) {
		r := &reader{ep: ep}
		a := r.f(stepAct, dim)
		lang := r.s(stepLang)
		if r.err != nil {
			return nil, r.err
		}
		return finish(r, f(a), lang)
	}
}

// bridgeOrig: drop step 0, binarize the gripper, relabel movement with the
// reached state (state[t+1,:6] - state[t,:6]) and drop the last step.
func bridgeOrig(ep *Episode) (*Trajectory, error) {
	r := &reader{ep: ep}
	a := r.f(stepAct, 7)
	st := r.f("steps/observation/state", 7)
	lang := r.s(stepLang)
	if r.err != nil {
		return nil, r.err
	}
	if ep.T < 3 {
		return nil, fmt.Errorf("bridge episode has %d steps; at least 3 are needed (the first and last are dropped)", ep.T)
	}
	a, st, lang = a[1:], st[1:], lang[1:]
	g := Binarize(column(a, 6))
	n := len(a) - 1
	out := make([][]float64, n)
	for t := 0; t < n; t++ {
		row := make([]float64, 7)
		for j := 0; j < 6; j++ {
			row[j] = st[t+1][j] - st[t][j]
		}
		row[6] = g[t]
		out[t] = row
	}
	tr, err := finish(r, out, lang[:n])
	if err != nil {
		return nil, err
	}
	for i := range tr.Steps {
		tr.Steps[i] = i + 1
	}
	return tr, nil
}

// languageTable: 2-D action padded to 7 with an open gripper; the
// instruction is int32 unicode code points (512 per step, 0-padded).
func languageTable(ep *Episode) (*Trajectory, error) {
	r := &reader{ep: ep}
	a := r.f(stepAct, 2)
	ins := r.f("steps/observation/instruction", 0)
	if r.err != nil {
		return nil, r.err
	}
	lang := make([]string, ep.T)
	for t, row := range ins {
		var sb strings.Builder
		for _, c := range row {
			if c == 0 {
				break
			}
			sb.WriteRune(rune(int32(c)))
		}
		lang[t] = sb.String()
	}
	return finish(r, concat(a, constant(ep.T, 4, 0), constant(ep.T, 1, 1)), lang)
}

// oxeConfigs builds Configs.
func oxeConfigs() map[string]Config {
	configs := map[string]Config{}
	rt1Keys := []string{"steps/action/world_vector", "steps/action/rotation_delta", "steps/action/gripper_closedness_action", obsNLI}
	add := func(name, img, wrist string, keys []string, f func(*Episode) (*Trajectory, error)) {
		configs[name] = Config{Image: img, Wrist: wrist, Keys: keys, Transform: f}
	}
	add("fractal20220817_data", "image", "", rt1Keys, rt1Like(rel2absKey("steps/action/gripper_closedness_action", 1), true))
	add("kuka", "image", "", rt1Keys, rt1Like(rel2absKey("steps/action/gripper_closedness_action", 1), true))
	for _, n := range []string{"bridge_orig", "bridge_dataset"} {
		add(n, "image_0", "", []string{stepAct, "steps/observation/state", stepLang}, bridgeOrig)
		c := configs[n]
		c.Secondary = "image_1"
		configs[n] = c
	}
	add("taco_play", "rgb_static", "rgb_gripper", []string{"steps/action/rel_actions_world", obsNLI}, func(ep *Episode) (*Trajectory, error) {
		r := &reader{ep: ep}
		a := r.f("steps/action/rel_actions_world", 7)
		lang := r.s(obsNLI)
		if r.err != nil {
			return nil, r.err
		}
		return finish(r, concat(cols(a, 0, 6), mapCol(cols(a, -1, 0), clip01)), lang)
	})
	add("jaco_play", "image", "image_wrist", rt1Keys, rt1Like(rel2absKey("steps/action/gripper_closedness_action", 1), false))
	add("berkeley_cable_routing", "image", "wrist45_image", rt1Keys, rt1Like(func(r *reader) [][]float64 { return constant(r.ep.T, 1, 0) }, true))
	add("roboturk", "front_rgb", "", rt1Keys, rt1Like(invClipKey("steps/action/gripper_closedness_action"), true))
	add("viola", "agentview_rgb", "eye_in_hand_rgb", rt1Keys, rt1Like(invClipKey("steps/action/gripper_closedness_action"), true))
	add("berkeley_autolab_ur5", "image", "hand_image", rt1Keys, rt1Like(rel2absKey("steps/action/gripper_closedness_action", 1), true))
	add("toto", "image", "", []string{"steps/action/world_vector", "steps/action/rotation_delta", "steps/action/open_gripper", obsNLI},
		rt1Like(func(r *reader) [][]float64 { return r.f("steps/action/open_gripper", 1) }, true))
	add("language_table", "rgb", "", []string{stepAct, "steps/observation/instruction"}, languageTable)
	vec := []string{stepAct, stepLang}
	invLast := func(clip bool) func(a [][]float64) [][]float64 {
		return func(a [][]float64) [][]float64 {
			return concat(cols(a, 0, 6), mapCol(cols(a, -1, 0), func(v float64) float64 {
				if clip {
					v = clip01(v)
				}
				return invert(v)
			}))
		}
	}
	add("stanford_hydra_dataset_converted_externally_to_rlds", "image", "wrist_image", vec, actionVector(7, invLast(false)))
	add("dlr_edan_shared_control_converted_externally_to_rlds", "image", "", vec, actionVector(7, invLast(false)))
	for _, n := range []string{"austin_buds_dataset_converted_externally_to_rlds", "austin_sailor_dataset_converted_externally_to_rlds",
		"austin_sirius_dataset_converted_externally_to_rlds", "utaustin_mutex"} {
		add(n, "image", "wrist_image", vec, actionVector(7, invLast(true)))
	}
	add("nyu_franka_play_dataset_converted_externally_to_rlds", "image", "", vec, actionVector(0, func(a [][]float64) [][]float64 {
		return concat(cols(a, -8, -2), mapCol(cols(a, -2, -1), clip01))
	}))
	// berkeley_fanuc_manipulation stores no gripper action: the gripper
	// state (observation/state[6]) inverted stands in for it.
	add("berkeley_fanuc_manipulation", "image", "wrist_image", []string{stepAct, "steps/observation/state", stepLang}, func(ep *Episode) (*Trajectory, error) {
		r := &reader{ep: ep}
		a := r.f(stepAct, 6)
		st := r.f("steps/observation/state", 0)
		lang := r.s(stepLang)
		if r.err != nil {
			return nil, r.err
		}
		if len(st[0]) < 7 {
			return nil, fmt.Errorf("observation/state has %d values per step, want at least 7", len(st[0]))
		}
		return finish(r, concat(a, mapCol(cols(st, 6, 7), invert)), lang)
	})
	add("ucsd_kitchen_dataset_converted_externally_to_rlds", "image", "", vec, actionVector(0, func(a [][]float64) [][]float64 { return cols(a, 0, -1) }))
	add("cmu_stretch", "image", "", vec, actionVector(0, func(a [][]float64) [][]float64 { return cols(a, 0, -1) }))
	// OpenVLA's modified LIBERO (libero_dataset_transform): gripper -1 open
	// .. +1 close → 1 - clip(g, 0, 1).
	for _, n := range []string{"libero_spatial_no_noops", "libero_object_no_noops", "libero_goal_no_noops", "libero_10_no_noops"} {
		add(n, "image", "wrist_image", vec, actionVector(7, invLast(true)))
		c := configs[n]
		c.ProprioKeys, c.Proprio = []string{"steps/observation/state"}, liberoProprio
		configs[n] = c
	}
	return configs
}

// liberoProprio is OpenVLA's LIBERO proprio: state_obs_keys ["EEF_state",
// None, "gripper_state"] with EEF_state = state[:, :6] and gripper_state =
// state[:, -2:] → 6 + 1 zero + 2 = 9 values per step.
func liberoProprio(ep *Episode) ([][]float64, error) {
	st, err := ep.Floats("steps/observation/state", 8)
	if err != nil {
		return nil, err
	}
	out := make([][]float64, len(st))
	for t, s := range st {
		out[t] = append(append(append(make([]float64, 0, 9), s[:6]...), 0), s[6:]...)
	}
	return out, nil
}
