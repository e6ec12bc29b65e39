package broker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	routes   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyhole_tool_calls_total",
			Help: "Tool calls by workspace, tool and outcome (ok, failed, denied).",
		}, []string{"workspace", "tool", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyhole_tool_call_duration_seconds",
			Help:    "Tool call latency including the upstream request.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"workspace", "tool"}),
		routes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyhole_route_requests_total",
			Help: "Requests through routes by workspace, route and status class.",
		}, []string{"workspace", "route", "status"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.duration, m.routes)
	}
	return m
}

func (m *metrics) observeCall(ws, tool, outcome string, d time.Duration) {
	m.calls.WithLabelValues(ws, tool, outcome).Inc()
	m.duration.WithLabelValues(ws, tool).Observe(d.Seconds())
}

func (m *metrics) observeRoute(ws, route string, status int) {
	class := "error"
	if status > 0 {
		class = string(rune('0'+status/100)) + "xx"
	}
	m.routes.WithLabelValues(ws, route, class).Inc()
}
