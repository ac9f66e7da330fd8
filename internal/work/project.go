package work

// Project returns the parts of live that sit at the paths desired sets. Maps recurse into the keys
// desired has; lists of equal length recurse element by element (so fields the apiserver defaults
// inside list items do not count); a list of another length is taken whole. status is ignored,
// and of metadata only labels and annotations (the keys desired sets) count.
//
// Two projections of the same live object onto the same desired object are equal exactly when
// the fields the Work cares about did not change, whatever else (status, defaults, other
// managers' fields) did.
func Project(desired, live map[string]any) map[string]any {
	d := make(map[string]any, len(desired))
	for k, v := range desired {
		d[k] = v
	}
	delete(d, "status")
	if dm, ok := desired["metadata"].(map[string]any); ok {
		meta := map[string]any{}
		for _, f := range []string{"labels", "annotations"} {
			if v, ok := dm[f]; ok {
				meta[f] = v
			}
		}
		d["metadata"] = meta
	}
	return projectMap(d, live)
}

// absent stands for a field desired sets and live lacks; it marshals distinctly from null.
type absent struct{}

func (absent) MarshalJSON() ([]byte, error) { return []byte(`"\u0000absent"`), nil }

func projectMap(d, l map[string]any) map[string]any {
	out := make(map[string]any, len(d))
	for k, dv := range d {
		lv, ok := l[k]
		if !ok {
			out[k] = absent{}
			continue
		}
		out[k] = projectValue(dv, lv)
	}
	return out
}

func projectValue(dv, lv any) any {
	switch d := dv.(type) {
	case map[string]any:
		if l, ok := lv.(map[string]any); ok {
			return projectMap(d, l)
		}
		return lv
	case []any:
		l, ok := lv.([]any)
		if !ok || len(l) != len(d) {
			return lv
		}
		out := make([]any, len(d))
		for i := range d {
			out[i] = projectValue(d[i], l[i])
		}
		return out
	default:
		return lv
	}
}
