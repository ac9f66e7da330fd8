//go:build tools

// Package tools pins kwok, which simulates the kubelets of the test bed's live members. It is a
// module of its own so that kwok's dependencies never reach Meridian's go.mod.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
