package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// memberBinary returns the program the member processes run. It builds
// the harness again, in dir, with the build tag benchmember, which leaves
// out the charts (gonum/plot and its fonts): a member then holds what an
// application embedding asyncraft holds, and its RSS measures that. When
// the build is impossible (no go command, or not run from the bench
// module's directory), members run the harness's own binary, and say so:
// their RSS then includes a few MiB of charting code.
func memberBinary(dir string) (path, note string, err error) {
	self, err := os.Executable()
	if err != nil {
		return "", "", err
	}
	mod, err := os.ReadFile("go.mod")
	if err != nil || !bytes.Contains(mod, []byte("module github.com/asyncraft/asyncraft/bench\n")) {
		return self, "members run the harness binary (not started from the bench directory)", nil
	}
	out := filepath.Join(dir, "asyncraft-bench-member")
	cmd := exec.Command("go", "build", "-tags", "benchmember", "-o", out, ".")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return self, fmt.Sprintf("members run the harness binary (building the member binary failed: %v: %s)",
			err, strings.TrimSpace(string(msg))), nil
	}
	return out, "", nil
}
