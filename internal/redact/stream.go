package redact

import (
	"errors"
	"io"
	"slices"
)

// Read sizes of a redacting Reader: it starts small, as most streamed
// chunks are, and grows its buffer when a read fills it.
const (
	minRead = 4 << 10
	maxRead = 64 << 10
)

// Reader returns a reader that yields src with every secret masked. A secret
// split across reads of src is still masked; bytes that could begin a secret
// are held back until the next read settles them, everything else is
// returned as soon as src yields it.
func (r *Redactor) Reader(src io.Reader) io.Reader {
	if r.Empty() {
		return src
	}
	return &reader{r: r, src: src}
}

type reader struct {
	r    *Redactor
	src  io.Reader
	in   []byte // bytes read from src and not yet redacted (a held prefix)
	out  []byte // redacted bytes not yet returned
	off  int    // how much of out was returned
	err  error  // error from src, returned once out is drained
	size int    // how much the next read asks for
}

func (rd *reader) Read(p []byte) (int, error) {
	for rd.off == len(rd.out) {
		if rd.err != nil {
			return 0, rd.err
		}
		rd.fill()
	}
	n := copy(p, rd.out[rd.off:])
	rd.off += n
	return n, nil
}

// fill reads once from src and redacts what can be settled.
func (rd *reader) fill() {
	if rd.size == 0 {
		rd.size = minRead
	}
	rd.in = slices.Grow(rd.in, rd.size)
	free := rd.in[len(rd.in):cap(rd.in)]
	n, err := rd.src.Read(free)
	rd.in = rd.in[:len(rd.in)+n]
	if n == len(free) && rd.size < maxRead {
		rd.size *= 2
	}
	final := err != nil
	if err != nil {
		rd.err = err
	}

	out, held := rd.r.replace(rd.out[:0], rd.in, final)
	if out == nil && final {
		out = append(rd.out[:0], rd.in...)
	}
	rd.out, rd.off = out, 0
	rd.in = append(rd.in[:0], rd.in[held:]...)
}

// Writer returns a writer that masks every secret in what is written to it
// and passes the rest on to dst. Bytes that could begin a secret are held
// until a later Write settles them; Close writes whatever is held and does
// not close dst.
func (r *Redactor) Writer(dst io.Writer) io.WriteCloser {
	return &writer{r: r, dst: dst}
}

type writer struct {
	r      *Redactor
	dst    io.Writer
	held   []byte
	out    []byte
	closed bool
}

// errClosed is returned by Write after Close.
var errClosed = errors.New("redact: write after close")

func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errClosed
	}
	if w.r.Empty() {
		return w.dst.Write(p)
	}
	w.held = append(w.held, p...)
	out, held := w.r.replace(w.out[:0], w.held, false)
	w.out = out
	w.held = append(w.held[:0], w.held[held:]...)
	if len(out) == 0 {
		return len(p), nil
	}
	if _, err := w.dst.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if len(w.held) == 0 {
		return nil
	}
	_, err := w.dst.Write(w.r.Bytes(w.held))
	w.held = nil
	return err
}
