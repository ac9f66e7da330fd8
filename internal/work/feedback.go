package work

import (
	"bytes"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// FeedbackFor returns the feedback fields the Work's rules ask of one object.
func FeedbackFor(rules []fleetv1alpha1.FeedbackRule, key ObjectKey) []fleetv1alpha1.FeedbackField {
	var out []fleetv1alpha1.FeedbackField
	for _, r := range rules {
		if r.Group != key.GroupKind.Group || r.Kind != key.GroupKind.Kind {
			continue
		}
		if (r.Name != "" && r.Name != key.Name) || (r.Namespace != "" && r.Namespace != key.Namespace) {
			continue
		}
		out = append(out, r.Fields...)
	}
	return out
}

// readFeedback reads fields of a live object. A field that is absent is reported with an empty
// value; one whose path is invalid says so in its value.
func readFeedback(u *unstructured.Unstructured, fields []fleetv1alpha1.FeedbackField) []fleetv1alpha1.FeedbackValue {
	if len(fields) == 0 {
		return nil
	}
	out := make([]fleetv1alpha1.FeedbackValue, 0, len(fields))
	for _, f := range fields {
		out = append(out, fleetv1alpha1.FeedbackValue{Name: f.Name, Value: readPath(u.Object, f.JSONPath)})
	}
	return out
}

func readPath(obj map[string]any, path string) string {
	jp := jsonpath.New("feedback").AllowMissingKeys(true)
	if err := jp.Parse("{" + path + "}"); err != nil {
		return fmt.Sprintf("invalid jsonPath: %v", err)
	}
	results, err := jp.FindResults(obj)
	if err != nil || len(results) == 0 || len(results[0]) == 0 {
		return ""
	}
	vals := make([]any, 0, len(results[0]))
	for _, r := range results[0] {
		vals = append(vals, r.Interface())
	}
	var v any = vals
	if len(vals) == 1 {
		v = vals[0]
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b.Bytes()))
}

// health is kstatus's verdict on a live object: Current, InProgress, Failed, ...
func health(u *unstructured.Unstructured) (string, string) {
	res, err := status.Compute(u)
	if err != nil {
		return string(status.UnknownStatus), err.Error()
	}
	return string(res.Status), res.Message
}
