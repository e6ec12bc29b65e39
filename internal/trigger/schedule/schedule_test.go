package schedule_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyhole/keyhole/internal/trigger/schedule"
)

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr, tz string
		wantText string
	}{
		{"", "", "empty expression"},
		{"* * * *", "", "5 fields"},
		{"61 * * * *", "", "above maximum"},
		{"0 9 * * mon-xyz", "", "failed to parse"},
		{"* * * * * * *", "", "5 fields"},
		{"@every 5m", "", "@every is not supported"},
		{"TZ=UTC", "", "tz field"},
		{"CRON_TZ=Europe/Berlin 0 9 * * *", "", "tz field"},
		{"0 0 30 2 *", "", "never matches"},
		{"0 9 * * *", "Mars/Olympus", "unknown time zone"},
		{"@fortnightly", "", "unrecognized descriptor"},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			t.Parallel()
			_, err := schedule.Parse(tc.expr, tc.tz)
			if !errors.Is(err, schedule.ErrInvalid) {
				t.Fatalf("Parse(%q, %q) error = %v, want ErrInvalid", tc.expr, tc.tz, err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not say %q", err, tc.wantText)
			}
		})
	}
}

func TestNextInTimeZone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr, tz string
		after    string
		want     string
	}{
		{"0 9 * * 1-5", "Europe/Berlin", "2025-01-03T09:00:00+01:00", "2025-01-06T09:00:00+01:00"},
		{"0 9 * * *", "America/New_York", "2025-01-01T00:00:00Z", "2025-01-01T09:00:00-05:00"},
		{"*/30 * * * * *", "", "2025-01-01T00:00:10Z", "2025-01-01T00:00:30Z"},
		{"@hourly", "", "2025-01-01T00:10:00Z", "2025-01-01T01:00:00Z"},
		// 02:30 does not exist in Berlin on 30 March 2025.
		{"30 2 * * *", "Europe/Berlin", "2025-03-29T03:00:00+01:00", "2025-03-31T02:30:00+02:00"},
	}
	for _, tc := range tests {
		t.Run(tc.expr+" "+tc.tz, func(t *testing.T) {
			t.Parallel()
			s, err := schedule.Parse(tc.expr, tc.tz)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := s.Next(mustTime(t, tc.after))
			if want := mustTime(t, tc.want); !got.Equal(want) {
				t.Errorf("Next = %s, want %s", got, want)
			}
		})
	}
}

func TestDue(t *testing.T) {
	t.Parallel()
	hourly, err := schedule.Parse("0 * * * *", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time { return mustTime(t, "2025-01-01T"+s+"Z") }
	tick := func(s string, late bool) schedule.Tick {
		return schedule.Tick{Time: at(s), CatchUp: late}
	}
	tests := []struct {
		name        string
		last, now   string
		policy      schedule.Policy
		want        []schedule.Tick
		wantSkipped int
	}{
		{"nothing due", "10:00:00", "10:30:00", schedule.Policy{}, nil, 0},
		{"on time", "10:00:00", "11:00:20", schedule.Policy{}, []schedule.Tick{tick("11:00:00", false)}, 0},
		{"latest catches up once", "05:00:00", "10:30:00", schedule.Policy{},
			[]schedule.Tick{tick("10:00:00", true)}, 4},
		{"latest skips when on time fires", "05:00:00", "10:00:30", schedule.Policy{},
			[]schedule.Tick{tick("10:00:00", false)}, 4},
		{"none", "05:00:00", "10:30:00", schedule.Policy{Catchup: schedule.CatchupNone}, nil, 5},
		{"all capped keeps newest", "05:00:00", "10:30:00",
			schedule.Policy{Catchup: schedule.CatchupAll, MaxCatchup: 2},
			[]schedule.Tick{tick("09:00:00", true), tick("10:00:00", true)}, 3},
		{"all with on time", "07:00:00", "10:00:10", schedule.Policy{Catchup: schedule.CatchupAll},
			[]schedule.Tick{tick("08:00:00", true), tick("09:00:00", true), tick("10:00:00", false)}, 0},
		{"last fired inside grace", "10:00:00", "10:00:30", schedule.Policy{}, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, skipped := hourly.Due(at(tc.last), at(tc.now), tc.policy)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(time.Time.Equal)); diff != "" {
				t.Errorf("Due ticks (-want +got):\n%s", diff)
			}
			if skipped != tc.wantSkipped {
				t.Errorf("skipped = %d, want %d", skipped, tc.wantSkipped)
			}
		})
	}
}

func TestDueAfterLongOutageIsBounded(t *testing.T) {
	t.Parallel()
	everySecond, err := schedule.Parse("* * * * * *", "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	got, skipped := everySecond.Due(now.AddDate(-1, 0, 0), now, schedule.Policy{})
	if len(got) != 60 {
		t.Errorf("got %d ticks, want the 60 on-time ticks of the grace minute", len(got))
	}
	if skipped < 100_000 {
		t.Errorf("skipped = %d, want the bounded count 100000", skipped)
	}
}

func TestParseCatchup(t *testing.T) {
	t.Parallel()
	if c, err := schedule.ParseCatchup(""); err != nil || c != schedule.CatchupLatest {
		t.Errorf(`ParseCatchup("") = %q, %v`, c, err)
	}
	if _, err := schedule.ParseCatchup("sometimes"); !errors.Is(err, schedule.ErrInvalid) {
		t.Errorf("ParseCatchup(sometimes) error = %v, want ErrInvalid", err)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
