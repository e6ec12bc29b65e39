package agent_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that runs leave no goroutine behind but the idle
// kept-alive connections of the runners' transports.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
}
