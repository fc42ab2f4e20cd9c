package asyncraft_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlyProtoRuntimeImportsProtoactor keeps protoactor-go behind the
// actors seam: only actors/protoactor may import it, so every other package
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
			if strings.HasPrefix(p, forbidden) && filepath.ToSlash(filepath.Dir(path)) != "actors/protoactor" {
				t.Errorf("%s imports %s; only actors/protoactor may", path, p)
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
