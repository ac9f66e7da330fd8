package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The command line is checked before the hub is asked: these never reach one.
func TestDescribeCommandLine(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-kubeconfig")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"describe"}, 2, "name a kind and an object"},
		{[]string{"describe", "gnp"}, 2, "name a kind and an object"},
		{[]string{"describe", "pod", "web"}, 2, `knows no kind "pod"`},
		{[]string{"describe", "gnp/web", "-o", "yaml"}, 2, `-o "yaml": use text or json`},
		{[]string{"describe", "gnp", "web", "extra"}, 2, "name a kind and an object"},
		// Flags after the positional arguments are read, as kubectl reads them: the kubeconfig
		// that does not exist is what fails.
		{[]string{"describe", "gnp", "web", "--kubeconfig", missing}, 1, "no-kubeconfig"},
		{[]string{"describe", "--kubeconfig", missing, "mc/member-1", "-o", "json"}, 1, "no-kubeconfig"},
		{[]string{"trace", "extra", "--kubeconfig", missing}, 2, "unexpected arguments [extra]"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("kubectl meridian %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, stderr.String(), tc.code, tc.want)
		}
	}
}

func TestUsageListsDescribe(t *testing.T) {
	var stdout bytes.Buffer
	if code := run(nil, &stdout, os.Stderr); code != 0 || !strings.Contains(stdout.String(), "describe") {
		t.Errorf("usage: exit %d\n%s", code, stdout.String())
	}
}
