package redact

import (
	"bytes"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

const canary = "sk_live_CANARY+/=&?<x>9f8e7d6c5b4a"

func TestBytesMasksEveryForm(t *testing.T) {
	t.Parallel()
	r := New(canary)
	basic := base64.StdEncoding.EncodeToString([]byte("user:" + canary))
	tests := []struct {
		name, in string
	}{
		{"raw", "key=" + canary + " end"},
		{"query escaped", "q=" + url.QueryEscape(canary)},
		{"path escaped", "/x/" + url.PathEscape(canary) + "/y"},
		{"json escaped", `{"k":"sk_live_CANARY+/=\u0026?\u003cx\u003e9f8e7d6c5b4a"}`},
		{"base64 std", base64.StdEncoding.EncodeToString([]byte(canary))},
		{"base64 url", base64.URLEncoding.EncodeToString([]byte(canary))},
		{"base64 inside basic auth", "Basic " + basic},
		{"base64 at offset 2", base64.StdEncoding.EncodeToString([]byte("ab" + canary + "zz"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := string(r.Bytes([]byte(tt.in)))
			if !strings.Contains(got, Mask) {
				t.Errorf("Bytes(%q) = %q, want a mask", tt.in, got)
			}
			if strings.Contains(got, canary) || r.Contains(got) {
				t.Errorf("Bytes(%q) = %q still holds the secret", tt.in, got)
			}
		})
	}
}

func TestBytesLeavesCleanInputAlone(t *testing.T) {
	t.Parallel()
	r := New(canary)
	in := []byte(`{"data":[{"id":"in_1","paid":true}]}`)
	got := r.Bytes(in)
	if &got[0] != &in[0] {
		t.Error("Bytes copied input that holds no secret")
	}
	if diff := cmp.Diff(string(in), string(got)); diff != "" {
		t.Errorf("Bytes changed clean input (-want +got):\n%s", diff)
	}
}

func TestShortAndEmptySecretsIgnored(t *testing.T) {
	t.Parallel()
	r := New("", "abc")
	if !r.Empty() {
		t.Fatalf("New with short secrets has patterns %q", r.patterns)
	}
	if got := r.String("abc abc"); got != "abc abc" {
		t.Errorf("String = %q", got)
	}
	var nilR *Redactor
	if got := nilR.String("x"); got != "x" {
		t.Errorf("nil Redactor String = %q", got)
	}
}

func TestLongestMatchWins(t *testing.T) {
	t.Parallel()
	r := New("abcd1234", "abcd1234XYZW5678")
	got := r.String("<abcd1234XYZW5678> <abcd1234>")
	if diff := cmp.Diff("<[REDACTED]> <[REDACTED]>", got); diff != "" {
		t.Errorf("String (-want +got):\n%s", diff)
	}
}

func TestHeader(t *testing.T) {
	t.Parallel()
	r := New(canary)
	h := map[string][]string{
		"X-Echo": {"Bearer " + canary, "clean"},
		"Other":  {"fine"},
	}
	got := r.Header(h)
	want := map[string][]string{
		"X-Echo": {"Bearer [REDACTED]", "clean"},
		"Other":  {"fine"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Header (-want +got):\n%s", diff)
	}
	if h["X-Echo"][0] != "Bearer "+canary {
		t.Error("Header modified its input")
	}
}

// streamCases are inputs whose secrets land on chunk boundaries when split.
func streamCases() []string {
	b64 := base64.StdEncoding.EncodeToString([]byte("user:" + canary))
	return []string{
		"",
		"no secret here at all",
		canary,
		"a" + canary + "b" + canary + canary,
		"data: {\"k\":\"" + url.QueryEscape(canary) + "\"}\n\n",
		"Authorization: Basic " + b64 + "\n",
		strings.Repeat("sk_live_", 10) + canary[:10] + " " + canary,
		"<abcd1234XYZW5678> abcd1234XY abcd1234",
	}
}

func TestReaderMatchesBytesAtEverySplit(t *testing.T) {
	t.Parallel()
	r := New(canary, "abcd1234", "abcd1234XYZW5678")
	for _, in := range streamCases() {
		want := string(r.Bytes([]byte(in)))
		for cut := 0; cut <= len(in); cut++ {
			src := io.MultiReader(strings.NewReader(in[:cut]), strings.NewReader(in[cut:]))
			got, err := io.ReadAll(r.Reader(src))
			if err != nil {
				t.Fatalf("ReadAll: %v", err)
			}
			if string(got) != want {
				t.Fatalf("split at %d of %q:\n got %q\nwant %q", cut, in, got, want)
			}
		}
	}
}

func TestStreamsMatchBytesInRandomChunks(t *testing.T) {
	t.Parallel()
	r := New(canary, "abcd1234", "abcd1234XYZW5678")
	rng := rand.New(rand.NewPCG(1, 2))
	for _, in := range streamCases() {
		want := string(r.Bytes([]byte(in)))
		for range 200 {
			chunks := randomChunks(rng, in)

			got, err := io.ReadAll(r.Reader(&chunkReader{chunks: slices.Clone(chunks)}))
			if err != nil || string(got) != want {
				t.Fatalf("Reader over %q: got %q, %v; want %q", chunks, got, err, want)
			}

			var buf bytes.Buffer
			w := r.Writer(&buf)
			for _, c := range chunks {
				if _, err := w.Write([]byte(c)); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if buf.String() != want {
				t.Fatalf("Writer over %q: got %q want %q", chunks, buf.String(), want)
			}
		}
	}
}

func TestReaderPassesEventsThroughUnheld(t *testing.T) {
	t.Parallel()
	r := New(canary)
	pr, pw := io.Pipe()
	rd := r.Reader(pr)
	event := "event: delta\ndata: {\"text\":\"hi\"}\n\n"
	go func() { _, _ = pw.Write([]byte(event)) }() // the pipe stays open

	buf := make([]byte, 1024)
	n, err := io.ReadAtLeast(rd, buf, len(event))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if got := string(buf[:n]); got != event {
		t.Errorf("read %q, want %q", got, event)
	}
	pw.Close()
}

func TestReaderHoldsOnlyAPossibleSecretPrefix(t *testing.T) {
	t.Parallel()
	r := New(canary)
	pr, pw := io.Pipe()
	rd := r.Reader(pr)
	go func() { _, _ = pw.Write([]byte("ok " + canary[:6])) }()

	buf := make([]byte, 1024)
	n, err := rd.Read(buf)
	if err != nil || string(buf[:n]) != "ok " {
		t.Fatalf("Read = %q, %v; want %q", buf[:n], err, "ok ")
	}
	go func() { _, _ = pw.Write([]byte(canary[6:] + "!")); pw.Close() }()
	rest, err := io.ReadAll(rd)
	if err != nil || string(rest) != Mask+"!" {
		t.Fatalf("rest = %q, %v", rest, err)
	}
}

func TestReaderPassesErrors(t *testing.T) {
	t.Parallel()
	r := New(canary)
	src := io.MultiReader(strings.NewReader("x "+canary), iotest.ErrReader(io.ErrUnexpectedEOF))
	got, err := io.ReadAll(r.Reader(src))
	if err != io.ErrUnexpectedEOF {
		t.Errorf("err = %v, want unexpected EOF", err)
	}
	if string(got) != "x "+Mask {
		t.Errorf("got %q", got)
	}
}

func TestWriterAfterClose(t *testing.T) {
	t.Parallel()
	w := New(canary).Writer(io.Discard)
	w.Close()
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func randomChunks(rng *rand.Rand, s string) []string {
	var chunks []string
	for len(s) > 0 {
		n := 1 + rng.IntN(min(len(s), 12))
		chunks = append(chunks, s[:n])
		s = s[n:]
	}
	return chunks
}

// chunkReader yields its chunks one Read at a time.
type chunkReader struct{ chunks []string }

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func BenchmarkBytes1KiB(b *testing.B) {
	r := New(canary, "another-secret-value-123456")
	in := bytes.Repeat([]byte(`{"id":"in_1","paid":true},`), 40)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		r.Bytes(in)
	}
}

func TestCache(t *testing.T) {
	t.Parallel()
	c := NewCache(2)
	a := c.Get(canary, "other-secret")
	if c.Get(canary, "other-secret") != a {
		t.Error("the same secrets built a second Redactor")
	}
	if c.Get(canary+"o", "ther-secret") == a {
		t.Error("different secrets shared a Redactor")
	}
	c.Get("third-secret")
	if got := c.Get(canary, "other-secret").String(canary); got != Mask {
		t.Errorf("String = %q", got)
	}
}
