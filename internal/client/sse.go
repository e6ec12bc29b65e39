package client

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
)

// stream sends a request whose answer is read as it arrives, without the
// client's overall timeout.
func (c *Client) stream(ctx context.Context, method, path string, query url.Values) (*http.Response, error) {
	return c.sendWith(ctx, c.streaming, method, path, query, nil)
}

// readEvents reads server-sent events and calls fn with each event's name
// and data, until the stream ends or fn fails.
func readEvents(r io.Reader, fn func(event string, data []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	event, data := "message", []byte(nil)
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if data != nil {
				if err := fn(event, data); err != nil {
					return err
				}
			}
			event, data = "message", nil
		case bytes.HasPrefix(line, []byte("event:")):
			event = string(bytes.TrimSpace(line[len("event:"):]))
		case bytes.HasPrefix(line, []byte("data:")):
			chunk := bytes.TrimPrefix(line[len("data:"):], []byte(" "))
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, chunk...)
		}
	}
	return sc.Err()
}
