package discord

import "time"

// State names what the client is doing.
type State string

// The client's states.
const (
	StateIdle       State = "idle"       // Run not called yet
	StateConnecting State = "connecting" // dialing, identifying or resuming
	StateConnected  State = "connected"  // READY or RESUMED received
	StateWaiting    State = "waiting"    // backing off before reconnecting
	StateStopped    State = "stopped"    // Run returned
)

// Status is a snapshot of the client for a status display. It holds no
// secret: the token appears nowhere in it.
type Status struct {
	State     State
	Connected bool
	// SessionID and Sequence are what a resume would send.
	SessionID string
	Sequence  int64
	BotUserID string
	// LastEvent is when the last gateway event arrived.
	LastEvent time.Time
	// Latency is the time between the last heartbeat and its ACK.
	Latency time.Duration
	// LastError describes the last connection failure, if any.
	LastError string
	// Connects, Identifies and Resumes count connection attempts, new
	// sessions and resumed ones.
	Connects   int
	Identifies int
	Resumes    int
	// BadFrames counts gateway frames that could not be decoded.
	BadFrames int
	// Delivered, Rejected and Failed count selected messages: handled,
	// not delivered (buffer full, queue full past BusyWait, or shutdown),
	// and refused by the handler with another error.
	Delivered uint64
	Rejected  uint64
	Failed    uint64
	// Queued is how many selected messages wait for the handler.
	Queued int
}
