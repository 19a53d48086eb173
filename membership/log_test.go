package membership

import (
	"log/slog"
	"testing"
)

func TestParseMemberlistLine(t *testing.T) {
	cases := []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=1.2.3.4", slog.LevelDebug, "Stream connection from=1.2.3.4"},
		{"[INFO] memberlist: Marking b as failed", slog.LevelInfo, "Marking b as failed"},
		{"[WARN] memberlist: Refuting a dead message", slog.LevelWarn, "Refuting a dead message"},
		{"[ERR] memberlist: Failed push/pull merge: x", slog.LevelError, "Failed push/pull merge: x"},
		{"[ERROR] memberlist: boom", slog.LevelError, "boom"},
		{"[ERR] Failed to shutdown transport: x\n", slog.LevelError, "Failed to shutdown transport: x"},
		{"untagged line", slog.LevelInfo, "untagged line"},
		{"[ERR] memberlist: Failed to send UDP ping: write udp 127.0.0.1:1->127.0.0.1:2: use of closed network connection", slog.LevelDebug,
			"Failed to send UDP ping: write udp 127.0.0.1:1->127.0.0.1:2: use of closed network connection"},
	}
	for _, tc := range cases {
		level, msg := parseMemberlistLine(tc.line)
		if level != tc.level || msg != tc.msg {
			t.Errorf("parse(%q) = %s %q, want %s %q", tc.line, level, msg, tc.level, tc.msg)
		}
	}
}

func TestMemberlistLoggerBridge(t *testing.T) {
	logger, rec := newTestLogger(t)
	newMemberlistLogger(logger).Printf("[WARN] memberlist: Refuting an alive message for '%s'", "b")
	if !rec.has("WARN Refuting an alive message for 'b'", "component=memberlist") {
		t.Error("bridged line not logged at WARN with component=memberlist")
	}
}
