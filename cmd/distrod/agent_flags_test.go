package main

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distrod/distrod/daemon"
	"github.com/urfave/cli/v2"
)

// parseAgent parses args and env (DISTROD_* variables) as `distrod agent`
// would and returns the settings the table reads, without validating them.
func parseAgent(t *testing.T, args []string, envs map[string]string) agentSettings {
	t.Helper()
	for k, v := range envs {
		t.Setenv(k, v)
	}
	var got agentSettings
	app := &cli.App{Name: "distrod", Writer: io.Discard, ErrWriter: io.Discard, ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{{Name: "agent", Flags: agentFlags(), Action: func(c *cli.Context) error {
			got = readAgentSettings(c)
			return nil
		}}}}
	if err := app.Run(append([]string{"distrod", "agent"}, args...)); err != nil {
		t.Fatalf("parse %v %v: %v", args, envs, err)
	}
	return got
}

// leaves lists every settable leaf of v (funcs and interfaces are the
// daemon's to fill) as path → value.
func leaves(v reflect.Value, prefix string, out map[string]any) map[string]any {
	for i := 0; i < v.NumField(); i++ {
		f, sf := v.Field(i), v.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		switch f.Kind() {
		case reflect.Struct:
			leaves(f, prefix+sf.Name+".", out)
		case reflect.Func, reflect.Interface, reflect.Pointer:
		default:
			out[prefix+sf.Name] = f.Interface()
		}
	}
	return out
}

// changed lists the leaves that differ between a and b.
func changed(a, b agentSettings) []string {
	la := leaves(reflect.ValueOf(a), "", map[string]any{})
	lb := leaves(reflect.ValueOf(b), "", map[string]any{})
	var out []string
	for k, v := range la {
		if !reflect.DeepEqual(v, lb[k]) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// otherValue is a value unlike def for the flag's field type: its text for
// a flag or variable, and the value it must parse to.
func otherValue(def any) (text string, want any) {
	switch d := def.(type) {
	case string:
		return d + "x", d + "x"
	case []string:
		return "10.0.0.1:7946,10.0.0.2:7946", []string{"10.0.0.1:7946", "10.0.0.2:7946"}
	case bool:
		return strconv.FormatBool(!d), !d
	case int:
		return strconv.Itoa(d + 7), d + 7
	case int64:
		return strconv.FormatInt(d+7, 10), d + 7
	case float64:
		return "0.25", 0.25
	case time.Duration:
		return (d + 1234*time.Millisecond).String(), d + 1234*time.Millisecond
	}
	panic(fmt.Sprintf("no other value for %T", def))
}

// pathOf is the field of agentSettings a table line sets.
func pathOf(t *testing.T, st setting) string {
	t.Helper()
	var s agentSettings
	path, ok := fieldPath(reflect.ValueOf(&s).Elem(), st.field(&s), "")
	if !ok {
		t.Fatalf("--%s: its field is not inside agentSettings", st.flag)
	}
	return path
}

// Every flag of the table sets exactly its field (plus the defaults that
// follow it), from the command line and from DISTROD_<FLAG> alike.
func TestAgentFlagsRoundTrip(t *testing.T) {
	// Settings whose flag-less default follows the flag under test.
	follows := map[string][]string{
		"verify-interval":    {"Node.Registry.StallHold"},
		"tombstone-ttl":      {"Node.Distro.RemoveGrace"},
		"sync-retry-delay":   nil, // 2.234s stays below the 30s maximum
		"snapshot-retry-min": nil,
	}
	base := parseAgent(t, nil, nil)
	seen := map[string]string{}
	for _, st := range agentSettingsTable {
		path := pathOf(t, st)
		if other, dup := seen[path]; dup {
			t.Errorf("--%s and --%s both set %s", st.flag, other, path)
		}
		seen[path] = st.flag
		var def agentSettings = defaultAgentSettings()
		text, want := otherValue(reflect.ValueOf(st.field(&def)).Elem().Interface())
		wantChanged := append([]string{path}, follows[st.flag]...)
		sort.Strings(wantChanged)

		args := []string{"--" + st.flag + "=" + text}
		if _, ok := want.([]string); ok {
			args = []string{"--" + st.flag, "10.0.0.1:7946", "--" + st.flag, "10.0.0.2:7946"}
		}
		check := func(t *testing.T, how string, got agentSettings) {
			t.Helper()
			if v := reflect.ValueOf(st.field(&got)).Elem().Interface(); !reflect.DeepEqual(v, want) {
				t.Errorf("--%s by %s %q: %s = %v, want %v", st.flag, how, text, path, v, want)
			}
			if c := changed(base, got); !reflect.DeepEqual(c, wantChanged) {
				t.Errorf("--%s by %s: changed %v, want %v", st.flag, how, c, wantChanged)
			}
		}
		t.Run(st.flag, func(t *testing.T) {
			check(t, "flag", parseAgent(t, args, nil))
			t.Run("env", func(t *testing.T) { // t.Setenv lasts until this subtest ends
				check(t, "env", parseAgent(t, nil, map[string]string{env(st.flag)[0]: text}))
			})
		})
	}
	// The table reaches the knobs that had no flag, in the fields named here.
	for flag, path := range map[string]string{
		"gossip-addr": "Node.Membership.BindAddr", "remove-grace": "Node.Distro.RemoveGrace",
		"failure-hold": "Node.Registry.FailureHold", "settle-hold": "Node.Registry.SettleHold",
		"stall-hold": "Node.Registry.StallHold", "list-cache-bytes": "Node.Registry.ListCacheBytes",
		"max-subscribers": "Node.Registry.MaxSubscribers", "subscriber-ttl": "Node.Registry.SubscriberTTL",
		"bootstrap-wait": "Node.Distro.BootstrapWait", "max-batch": "Node.Distro.MaxBatch",
		"forward-timeout": "Node.Registry.ForwardTimeout", "peer-timeout": "Node.Distro.RequestTimeout",
		"shutdown-timeout": "ShutdownTimeout",
	} {
		if seen[path] != flag {
			t.Errorf("%s is set by --%s, want --%s", path, seen[path], flag)
		}
	}
}

// Without flags the agent runs with daemon.DefaultConfig (and the hostname),
// and --help shows those defaults.
func TestAgentDefaultsAreDefaultConfig(t *testing.T) {
	got := parseAgent(t, nil, nil)
	host, _ := os.Hostname()
	if got.Node.Name != host {
		t.Errorf("default name %q, want the hostname %q", got.Node.Name, host)
	}
	got.Node.Name = ""
	if want := daemon.DefaultConfig(); !reflect.DeepEqual(got.Node, want) {
		t.Errorf("flag-less config differs from daemon.DefaultConfig in %v", changed(agentSettings{Node: want, ShutdownTimeout: got.ShutdownTimeout}, got))
	}
	def := defaultAgentSettings()
	for _, f := range agentFlags() {
		st := agentSettingsTable[indexOf(t, f.Names()[0])]
		v := reflect.ValueOf(st.field(&def)).Elem().Interface()
		var want string
		switch v := v.(type) {
		case string:
			want = v
		case []string:
			want = strings.Join(v, ", ")
		default:
			want = fmt.Sprint(v)
		}
		if shown := f.(cli.DocGenerationFlag).GetValue(); shown != want && !(shown == "" && want == "false") {
			t.Errorf("--%s shows default %q, want %q", st.flag, shown, want)
		}
		if e := f.(interface{ GetEnvVars() []string }).GetEnvVars(); len(e) != 1 || !strings.HasPrefix(e[0], "DISTROD_") {
			t.Errorf("--%s: env vars %v", st.flag, e)
		}
	}
}

func indexOf(t *testing.T, flag string) int {
	t.Helper()
	for i, st := range agentSettingsTable {
		if st.flag == flag {
			return i
		}
	}
	t.Fatalf("no --%s in the table", flag)
	return -1
}

// Defaults that follow other settings, and an explicit value that wins over them.
func TestAgentFollowedDefaults(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		check func(daemon.Config) string
	}{
		{[]string{"--verify-interval=2m"}, func(c daemon.Config) string {
			if c.Distro.TombstoneTTL != 6*time.Minute || c.Distro.RemoveGrace != 6*time.Minute || c.Registry.StallHold != 2*time.Minute+2*time.Second {
				return fmt.Sprintf("tombstone %s, remove grace %s, stall hold %s; want 6m, 6m, 2m2s", c.Distro.TombstoneTTL, c.Distro.RemoveGrace, c.Registry.StallHold)
			}
			return ""
		}},
		{[]string{"--verify-interval=1m", "--stall-hold=1s", "--remove-grace=0s"}, func(c daemon.Config) string {
			if c.Registry.StallHold != time.Second || c.Distro.RemoveGrace != 0 {
				return fmt.Sprintf("stall hold %s, remove grace %s; want the given 1s, 0s", c.Registry.StallHold, c.Distro.RemoveGrace)
			}
			return ""
		}},
		{[]string{"--tombstone-ttl=10m"}, func(c daemon.Config) string {
			if c.Distro.RemoveGrace != 10*time.Minute {
				return fmt.Sprintf("remove grace %s, want it to follow --tombstone-ttl 10m", c.Distro.RemoveGrace)
			}
			return ""
		}},
		{[]string{"--sync-retry-delay=1m"}, func(c daemon.Config) string {
			if c.Distro.SyncRetryMax != time.Minute {
				return fmt.Sprintf("sync retry max %s, want it raised to --sync-retry-delay 1m", c.Distro.SyncRetryMax)
			}
			return ""
		}},
	} {
		got := parseAgent(t, tc.args, nil)
		if msg := tc.check(got.Node); msg != "" {
			t.Errorf("%v: %s", tc.args, msg)
		}
		if err := got.Node.Validate(); err != nil {
			t.Errorf("%v: %v", tc.args, err)
		}
	}
}

// README's agent-flag table lists every flag.
func TestReadmeListsEveryAgentFlag(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, f := range agentCommand().Flags {
		if st := f.Names()[0]; !strings.Contains(readme, "| `--"+st+"`") && !strings.Contains(readme, "`--"+st+"` /") && !strings.Contains(readme, "/ `--"+st+"`") {
			t.Errorf("README.md's agent flags do not list --%s", st)
		}
	}
}
