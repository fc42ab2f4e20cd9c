package asyncraft_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlyProtoRuntimeImportsProtoactor keeps protoactor-go behind the
// actors seam: only actors/proto may import it, so every other package
// runs unchanged on the simulator.
func TestOnlyProtoRuntimeImportsProtoactor(t *testing.T) {
	const forbidden = "github.com/asynkron/protoactor-go"
	checked := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "bench":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, forbidden) && filepath.ToSlash(filepath.Dir(path)) != "actors/proto" {
				t.Errorf("%s imports %s; only actors/proto may", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("checked only %d files; is the walk rooted at the module?", checked)
	}
}

// TestActorPackagesImportNoRuntimeNorRoot keeps the actor packages (the
// node, its replicators, log manager, FSM caller and snapshot store) free of any actor
// runtime and of the root package, directly or through their
// dependencies: they talk to the world through the actors seam only, so
// the simulator runs them unchanged, and the root stays the wiring.
func TestActorPackagesImportNoRuntimeNorRoot(t *testing.T) {
	const mod = "github.com/asyncraft/asyncraft"
	forbidden := []string{mod, mod + "/actors/proto", mod + "/actors/sim", "github.com/asynkron/protoactor-go"}
	for _, pkg := range []string{"node", "replicator", "logmgr", "fsm", "snapshot"} {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps ./%s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 5 {
			t.Fatalf("go list -deps ./%s listed only %v", pkg, deps)
		}
		for _, d := range deps {
			for _, f := range forbidden {
				if d == f || (f != mod && strings.HasPrefix(d, f+"/")) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
}
