package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestNoFileReferencesDocumentsOutsideTheRepository keeps the repository
// self-contained: docs/protocol.md is the contract for users, and a path
// to a file beside the checkout is broken in every clone.
func TestNoFileReferencesDocumentsOutsideTheRepository(t *testing.T) {
	// Spelt in pieces so that this file does not match itself.
	outside := []string{".." + "/shared", "/work" + "/shared", "shared" + "/xmpp2-protocol", "shared" + "/field-notes"}
	root := repoRoot(t)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == ".git" || name == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.IndexByte(b, 0) >= 0 {
			return nil // binary
		}
		for _, o := range outside {
			if i := bytes.Index(b, []byte(o)); i >= 0 {
				line := 1 + bytes.Count(b[:i], []byte("\n"))
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s:%d refers to %s, outside the repository; link docs/ instead", rel, line, o)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var markdownLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestMarkdownLinksResolveInsideTheRepository checks every relative link
// of README.md and docs/*.md names a file of the repository.
func TestMarkdownLinksResolveInsideTheRepository(t *testing.T) {
	root := repoRoot(t)
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range append([]string{filepath.Join(root, "README.md")}, docs...) {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range markdownLink.FindAllSubmatch(b, -1) {
			target, _, _ := strings.Cut(string(m[1]), "#")
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path := filepath.Join(filepath.Dir(doc), filepath.FromSlash(target))
			rel, _ := filepath.Rel(root, path)
			if strings.HasPrefix(rel, "..") {
				t.Errorf("%s links %s, outside the repository", filepath.Base(doc), target)
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links %s, which does not exist", filepath.Base(doc), target)
			}
		}
	}
}
