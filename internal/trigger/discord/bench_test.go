package discord_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	fakediscord "github.com/keyhole/keyhole/internal/fake/discord"
	"github.com/keyhole/keyhole/internal/trigger/discord"
)

// BenchmarkMessageToHandler measures one MESSAGE_CREATE from the moment the
// fake gateway is told to send it until the handler is running with it:
// socket, decoding, filter, buffer and delivery goroutine.
func BenchmarkMessageToHandler(b *testing.B) {
	srv := fakediscord.NewServer(fakediscord.Options{Token: canaryToken})
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	arrived := make(chan time.Time, 1)
	client, err := discord.New(discord.Config{
		Token: canaryToken, GatewayURL: srv.GatewayURL(), APIBase: srv.APIBase(),
		Filter: discord.Filter{Mention: true},
		Handler: func(context.Context, discord.Message) error {
			arrived <- time.Now()
			return nil
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- client.Run(ctx) }()
	if err := srv.Wait(ctx, func(s fakediscord.Stats) bool { return s.Identifies == 1 }); err != nil {
		b.Fatal(err)
	}
	waitConnected(b, client)

	msg := fakediscord.Message{Content: "<@" + srv.BotUserID() + "> did Acme pay?"}
	measure(b, func() time.Duration {
		start := time.Now()
		if _, err := srv.SendMessage(msg); err != nil {
			b.Fatal(err)
		}
		return (<-arrived).Sub(start)
	})
	cancel()
	<-done
}

// BenchmarkRawFrameBaseline is the floor for the benchmark above: the same
// fake sends the same event to a bare WebSocket reader that only reads the
// frame and decodes its envelope.
func BenchmarkRawFrameBaseline(b *testing.B) {
	srv := fakediscord.NewServer(fakediscord.Options{Token: canaryToken})
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	ws, _, err := websocket.Dial(ctx, srv.GatewayURL()+"?v=10&encoding=json", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	ws.Read(ctx) // Hello
	identify := `{"op":2,"d":{"token":"` + canaryToken + `","intents":37376,` +
		`"properties":{"os":"linux","browser":"bench","device":"bench"}}}`
	if err := ws.Write(ctx, websocket.MessageText, []byte(identify)); err != nil {
		b.Fatal(err)
	}
	ws.Read(ctx) // READY

	msg := fakediscord.Message{Content: "<@" + srv.BotUserID() + "> did Acme pay?"}
	measure(b, func() time.Duration {
		start := time.Now()
		if _, err := srv.SendMessage(msg); err != nil {
			b.Fatal(err)
		}
		_, data, err := ws.Read(ctx)
		var p struct {
			Op int             `json:"op"`
			D  json.RawMessage `json:"d"`
		}
		if err != nil || json.Unmarshal(data, &p) != nil {
			b.Fatalf("read: %v", err)
		}
		return time.Since(start)
	})
}

// measure runs one round per iteration and reports latency percentiles.
func measure(b *testing.B, round func() time.Duration) {
	b.Helper()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		lat = append(lat, round())
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

func waitConnected(b *testing.B, c *discord.Client) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !c.Status().Connected {
		if time.Now().After(deadline) {
			b.Fatal("client not connected within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
