package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/testutil"
)

// readmeTestFlags are added to a README command when the test runs it, so
// that a command meant to take minutes (the demo) runs at test size.
var readmeTestFlags = map[string][]string{
	"demo": {"--n", "64", "--float-epochs", "1", "--qat-epochs", "1", "--backend", "go"},
}

// runnableCommands returns the "go run ./cmd/qatclip ..." lines of the
// fenced blocks whose info string includes "runnable" in the Markdown file.
func runnableCommands(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds [][]string
	inBlock, runnable := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "```") {
			if inBlock {
				inBlock = false
				continue
			}
			inBlock, runnable = true, strings.Contains(line, "runnable")
			continue
		}
		if !inBlock || !runnable {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "go run ./cmd/qatclip "); ok {
			cmds = append(cmds, shellFields(t, rest))
		}
	}
	return cmds
}

// shellFields splits a command line on spaces, honouring single and double
// quotes (the README uses no other shell syntax in runnable blocks).
func shellFields(t *testing.T, s string) []string {
	var out []string
	var cur strings.Builder
	quote := rune(0)
	inField := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inField = r, true
		case r == ' ' || r == '\t':
			if inField {
				out = append(out, cur.String())
				cur.Reset()
				inField = false
			}
		case r == '$' || r == '|' || r == ';' || r == '&' || r == '>' || r == '<' || r == '`':
			t.Fatalf("runnable README line uses shell syntax %q: %s", r, s)
		default:
			cur.WriteRune(r)
			inField = true
		}
	}
	if inField {
		out = append(out, cur.String())
	}
	return out
}

// TestReadmeRunnableBlocks runs every "go run ./cmd/qatclip" line of
// README.md's runnable blocks, from the repository root as a newcomer
// would, with output paths under /tmp moved to a temporary folder. Lines
// that read ../shared are skipped when it is absent.
func TestReadmeRunnableBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the README's commands")
	}
	root := testutil.RepoRoot(t)
	cmds := runnableCommands(t, filepath.Join(root, "README.md"))
	if len(cmds) == 0 {
		t.Fatal("README.md has no runnable go run ./cmd/qatclip lines")
	}
	tmp := t.TempDir()
	for i, args := range cmds {
		name := strings.Join(args, " ")
		t.Run(name, func(t *testing.T) {
			for j, a := range args {
				if strings.Contains(a, "../shared") {
					testutil.SharedDir(t)
				}
				if rest, ok := strings.CutPrefix(a, "/tmp/"); ok {
					args[j] = filepath.Join(tmp, strings.ReplaceAll(rest, "/", "_"))
				}
			}
			args = append(args, readmeTestFlags[args[0]]...)
			stderr, code := runMainIn(t, root, args...)
			if code != 0 {
				t.Fatalf("README command %d exited %d:\n%s", i+1, code, stderr)
			}
		})
	}
}
