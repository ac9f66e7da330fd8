package describe

import (
	"fmt"
	"io"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// node is one line of the printed tree and the lines under it.
type node struct {
	text     string
	children []*node
}

func (n *node) add(format string, args ...any) *node {
	c := &node{text: fmt.Sprintf(format, args...)}
	n.children = append(n.children, c)
	return c
}

// Print writes the report as a tree: the object, its conditions, each cluster with what the
// kind reports there, and under it the ClusterWorks and their member objects.
func (r *Report) Print(w io.Writer) error {
	root := &node{text: fmt.Sprintf("%s/%s", r.Kind, r.Name)}
	gen := root.add("Generation %d, observed %d", r.Generation, r.ObservedGeneration)
	if r.ObservedGeneration != r.Generation {
		gen.text += ": the status describes an older spec, the controller has not caught up"
	}
	for _, f := range r.Facts {
		root.add("%s: %s", f.Name, orDash(f.Value))
	}
	conditions(root.add("Conditions"), r.Conditions)
	if len(r.Clusters) > 0 {
		cs := root.add("Clusters")
		for _, c := range r.Clusters {
			cn := cs.add("%s: %s%s", c.Name, c.State, facts(c.Facts))
			if c.Message != "" {
				cn.add("%s", c.Message)
			}
			for _, rule := range c.Rules {
				rn := cn.add("rule %s/%s: %s (%s)", rule.Direction, rule.Rule, rule.Enforcement, rule.Reason)
				if rule.Message != "" {
					rn.add("%s", rule.Message)
				}
			}
			for _, wk := range c.Works {
				work(cn, wk)
			}
		}
	}
	if len(r.Services) > 0 {
		ss := root.add("Services")
		for _, s := range r.Services {
			sn := ss.add("%s (%s): exported by %s, imported by %s, %d ready endpoints", s.Name, s.Type,
				orNone(s.SourceClusters), orNone(s.ImportingClusters), s.ReadyEndpoints)
			if s.Conflict != "" {
				sn.add("conflict: %s", s.Conflict)
			}
		}
	}
	if len(r.Works) > 0 {
		other := root.add("ClusterWorks of clusters not in the status")
		for _, wk := range r.Works {
			work(other, wk)
		}
	}
	var b strings.Builder
	b.WriteString(root.text + "\n")
	printChildren(&b, root, "")
	_, err := io.WriteString(w, b.String())
	return err
}

func conditions(n *node, conds []metav1.Condition) {
	if len(conds) == 0 {
		n.add("none reported yet")
	}
	for _, c := range conds {
		line := fmt.Sprintf("%s=%s %s", c.Type, c.Status, c.Reason)
		if c.Message != "" {
			line += ": " + c.Message
		}
		n.add("%s", line)
	}
}

func work(parent *node, w Work) {
	var conds []string
	for _, c := range w.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%s", c.Type, c.Status))
	}
	wn := parent.add("ClusterWork %s/%s: %s%s", w.Namespace, w.Name, orDash(w.Summary), bracket(strings.Join(conds, " ")))
	for _, c := range w.Conditions {
		// Degraded alone says trouble when True.
		bad := c.Status != metav1.ConditionTrue
		if c.Type == fleetv1alpha1.DegradedCondition {
			bad = c.Status == metav1.ConditionTrue
		}
		if bad && c.Message != "" {
			wn.add("%s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	for _, o := range w.Objects {
		gk := o.Kind
		if o.Group != "" {
			gk += "." + o.Group
		}
		id := o.Name
		if o.Namespace != "" {
			id = o.Namespace + "/" + o.Name
		}
		line := fmt.Sprintf("%s %s: %s", gk, id, o.State)
		if o.Health != "" {
			line += ", " + o.Health
		}
		if o.Message != "" {
			line += ": " + o.Message
		}
		wn.add("%s", line)
	}
}

func printChildren(b *strings.Builder, n *node, indent string) {
	for i, c := range n.children {
		branch, next := "├─ ", "│  "
		if i == len(n.children)-1 {
			branch, next = "└─ ", "   "
		}
		b.WriteString(indent + branch + c.text + "\n")
		printChildren(b, c, indent+next)
	}
}

func facts(fs []Fact) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, f.Name+" "+orDash(f.Value))
	}
	return bracket(strings.Join(parts, ", "))
}

func bracket(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
