// Package schedule parses keyhole's cron schedules and works out which ticks
// are due.
//
// # Expressions
//
// An expression has the standard five fields, minute hour day-of-month month
// day-of-week ("0 9 * * 1-5"), or six with a leading seconds field
// ("*/30 * * * * *") for sub-minute schedules. The descriptors @yearly
// (@annually), @monthly, @weekly, @daily (@midnight) and @hourly are accepted.
// @every is refused: its ticks depend on when the schedule was loaded, so two
// servers would not agree on them, and keyhole fires each tick once across
// servers by recording it. The time zone is given apart from the expression as
// an IANA name; a TZ= or CRON_TZ= prefix is refused to keep one way of saying
// it.
//
// # Missed ticks
//
// [Schedule.Due] lists the ticks between the last fired tick and now. A tick
// no older than Policy.Grace is on time and always fires. Older ticks were
// missed, typically while keyhole was down, and the [Catchup] policy decides
// what happens to them: none fires nothing, latest (the default) fires at most
// one catch-up tick and only when no on-time tick fires, all fires every
// missed tick up to a cap, keeping the newest.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("schedule: invalid schedule")

// Schedule is a parsed cron expression in a time zone.
type Schedule struct {
	expr string
	spec *cron.SpecSchedule
}

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour |
	cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

const fieldsHelp = "use 5 fields (minute hour day-of-month month day-of-week, " +
	`e.g. "0 9 * * 1-5") or 6 with leading seconds`

// Parse parses expr in the IANA time zone tz ("" means UTC).
func Parse(expr, tz string) (*Schedule, error) {
	expr = strings.TrimSpace(expr)
	loc, err := loadLocation(tz)
	if err != nil {
		return nil, err
	}
	if err := precheck(expr); err != nil {
		return nil, err
	}

	spec, err := parseSpec(expr)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v; %s", ErrInvalid, expr, err, fieldsHelp)
	}
	spec.Location = loc

	// robfig/cron gives up after five years without a match.
	if spec.Next(time.Now()).IsZero() {
		return nil, fmt.Errorf("%w: %q never matches a date (such as 30 February)",
			ErrInvalid, expr)
	}
	return &Schedule{expr: expr, spec: spec}, nil
}

func loadLocation(tz string) (*time.Location, error) {
	if tz == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("%w: unknown time zone %q: use an IANA name "+
			"such as \"Europe/Berlin\" or \"UTC\"", ErrInvalid, tz)
	}
	return loc, nil
}

// precheck refuses what the parser would accept but keyhole does not, and
// inputs the parser is known to mishandle.
func precheck(expr string) error {
	switch {
	case expr == "":
		return fmt.Errorf("%w: empty expression; %s", ErrInvalid, fieldsHelp)
	case strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ="):
		return fmt.Errorf("%w: %q: give the time zone in the tz field, not in the "+
			"expression", ErrInvalid, expr)
	case strings.HasPrefix(expr, "@every"):
		return fmt.Errorf("%w: %q: @every is not supported because its ticks are "+
			"not fixed in time; use a field expression such as \"*/5 * * * *\"",
			ErrInvalid, expr)
	}
	return nil
}

// parseSpec calls the parser, turning any panic of its into an error: bad
// input must never take the server down.
func parseSpec(expr string) (spec *cron.SpecSchedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			spec, err = nil, fmt.Errorf("cannot parse: %v", r)
		}
	}()

	s, err := parser.Parse(expr)
	if err != nil {
		return nil, err
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("unsupported schedule kind %T", s)
	}
	return spec, nil
}

// String returns the expression as given to Parse, trimmed.
func (s *Schedule) String() string { return s.expr }

// Location returns the schedule's time zone.
func (s *Schedule) Location() *time.Location { return s.spec.Location }

// Next returns the first tick strictly after t.
func (s *Schedule) Next(t time.Time) time.Time { return s.spec.Next(t) }
