package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestConfigFilesInSkipsWhatIsNotConfiguration: a folder holding a program
// beside its configuration applies only the configuration.
func TestConfigFilesInSkipsWhatIsNotConfiguration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := map[string]string{
		"keyhole.yaml":                   "kind: tool\n",
		"more/route.yml":                 "kind: route\n",
		"tool.json":                      `{"kind": "tool"}`,
		"package.json":                   `{"name": "agent"}`,
		"package-lock.json":              `{"lockfileVersion": 3}`,
		"node_modules/x/keyhole.yaml":    "kind: tool\n",
		".git/config.yaml":               "kind: tool\n",
		"agent.mjs":                      "export {}\n",
		"node_modules/x/config/tsc.json": `{"kind": "tool"}`,
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := configFilesIn(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i], _ = filepath.Rel(dir, got[i])
	}
	want := []string{"keyhole.yaml", "more/route.yml", "tool.json"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}
