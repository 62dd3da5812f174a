package fakecli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// OpenStore returns a Store kept in dir/session-state/<sessionID>/
// (meta.json and events.jsonl), like a COPILOT_HOME. Fake CLI processes
// given the same dir share sessions, so a session can be resumed on one
// process after another was killed. Every call reads or writes the files;
// nothing is cached. The store trims nothing: it is meant for failover tests,
// not long benchmarks.
func OpenStore(dir string) (*Store, error) {
	root := filepath.Join(dir, "session-state")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("fakecli: open store: %w", err)
	}
	return &Store{b: &dirStore{root: root}}, nil
}

// dirStore keeps sessions in files. I/O failures read as "no such session";
// a fake has no better answer to give its client.
type dirStore struct {
	root string
	mu   sync.Mutex // serialises this process's read-modify-write of meta.json
}

// dirMeta is meta.json.
type dirMeta struct {
	Start    time.Time `json:"startTime"`
	Modified time.Time `json:"modifiedTime"`
	Summary  string    `json:"summary"`
	Turns    int       `json:"turns"`
}

const (
	metaFile   = "meta.json"
	eventsFile = "events.jsonl"
)

// dirName maps a session ID to a directory name that stays inside root
// and that url.PathUnescape maps back to the ID.
func dirName(id string) string {
	switch id {
	case "":
		return "%" // never unescapes: invisible to list, but inside root
	case ".", "..":
		return strings.Repeat("%2E", len(id))
	}
	return url.PathEscape(id)
}

func (d *dirStore) path(id string, file string) string {
	return filepath.Join(d.root, dirName(id), file)
}

func (d *dirStore) readMeta(id string) (dirMeta, bool) {
	b, err := os.ReadFile(d.path(id, metaFile))
	if err != nil {
		return dirMeta{}, false
	}
	var m dirMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return dirMeta{}, false
	}
	return m, true
}

// writeMeta replaces meta.json atomically, so readers in other processes
// see the old or the new one.
func (d *dirStore) writeMeta(id string, m dirMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	dst := d.path(id, metaFile)
	tmp, err := os.CreateTemp(filepath.Dir(dst), metaFile+".*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

func (d *dirStore) appendLine(id string, ev []byte) error {
	f, err := os.OpenFile(d.path(id, eventsFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	line := make([]byte, 0, len(ev)+1)
	line = append(append(line, ev...), '\n')
	_, werr := f.Write(line)
	return errors.Join(werr, f.Close())
}

func (d *dirStore) ensure(id string, now time.Time) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m, ok := d.readMeta(id); ok {
		return m.Start, false
	}
	if err := os.MkdirAll(filepath.Dir(d.path(id, metaFile)), 0o700); err != nil {
		return now, false
	}
	return now, d.writeMeta(id, dirMeta{Start: now, Modified: now}) == nil
}

func (d *dirStore) startTime(id string) (time.Time, bool) {
	m, ok := d.readMeta(id)
	return m.Start, ok
}

func (d *dirStore) appendEvent(id string, now time.Time, ev []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.readMeta(id)
	if !ok || d.appendLine(id, ev) != nil {
		return false
	}
	m.Modified = now
	return d.writeMeta(id, m) == nil
}

func (d *dirStore) endTurn(id string, now time.Time, prompt string) (start, modified time.Time, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.readMeta(id)
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	m.Turns++
	m.Modified = now
	if m.Summary == "" {
		m.Summary = summarize(prompt)
	}
	if d.writeMeta(id, m) != nil {
		return time.Time{}, time.Time{}, false
	}
	return m.Start, m.Modified, true
}

func (d *dirStore) events(id string) ([][]byte, bool) {
	if _, ok := d.readMeta(id); !ok {
		return nil, false
	}
	b, err := os.ReadFile(d.path(id, eventsFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	var evs [][]byte
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		// A line cut short by a killed writer is not JSON: skip it.
		if len(line) > 0 && json.Valid(line) {
			evs = append(evs, line)
		}
	}
	return evs, true
}

func (d *dirStore) remove(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.readMeta(id); !ok {
		return false
	}
	return os.RemoveAll(filepath.Dir(d.path(id, metaFile))) == nil
}

func (d *dirStore) turns(id string) int {
	m, _ := d.readMeta(id)
	return m.Turns
}

func (d *dirStore) list() []listEntry {
	ents, err := os.ReadDir(d.root)
	if err != nil {
		return nil
	}
	out := make([]listEntry, 0, len(ents))
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		id, err := url.PathUnescape(e.Name())
		if err != nil || dirName(id) != e.Name() {
			continue // not a directory this store made
		}
		m, ok := d.readMeta(id)
		if !ok {
			continue
		}
		out = append(out, listEntry{ID: id, Start: m.Start, Modified: m.Modified, Summary: m.Summary, Turns: m.Turns})
	}
	return out
}
