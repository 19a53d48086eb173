package membership

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// newMemberlistLogger bridges memberlist's *log.Logger into slog: each line's
// "[LEVEL]" prefix becomes the slog level, with component=memberlist.
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(logBridge{log: l.With("component", "memberlist")}, "", 0)
}

type logBridge struct{ log *slog.Logger }

var levelTags = []struct {
	tag   string
	level slog.Level
}{
	{"[DEBUG]", slog.LevelDebug},
	{"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError},
	{"[ERROR]", slog.LevelError},
}

func (b logBridge) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		level, msg := parseMemberlistLine(line)
		b.log.Log(context.Background(), level, msg)
	}
	return len(p), nil
}

// parseMemberlistLine splits "[WARN] memberlist: text" into a level and
// "text"; a line without a known tag is logged at Info.
func parseMemberlistLine(line string) (slog.Level, string) {
	level := slog.LevelInfo
	line = strings.TrimSpace(line)
	for _, t := range levelTags {
		if strings.HasPrefix(line, t.tag) {
			level, line = t.level, strings.TrimSpace(line[len(t.tag):])
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	if level > slog.LevelDebug && strings.Contains(line, "use of closed network connection") {
		// memberlist's probe timers outlive its transport by a moment on shutdown:
		// noise, not an error an operator should act on.
		level = slog.LevelDebug
	}
	return level, line
}
