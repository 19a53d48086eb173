package membership

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	c := DefaultConfig()
	c.Name = "n1"
	c.HTTPAddr = "10.0.0.1:8848"
	return c
}

func TestDefaultConfigIsValid(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig with a name and HTTP address: %v", err)
	}
	d := DefaultConfig()
	if d.Profile != ProfileLAN || d.Partitions != 1024 || d.JoinRetryMin != time.Second ||
		d.JoinRetryMax != 30*time.Second || d.LeaveTimeout != 5*time.Second {
		t.Errorf("DefaultConfig() = %+v", d)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error
	}{
		{"no name", func(c *Config) { c.Name = "" }, "node name is empty"},
		{"bind without port", func(c *Config) { c.BindAddr = "127.0.0.1" }, `bind address "127.0.0.1": want host:port`},
		{"bind port too big", func(c *Config) { c.BindAddr = "127.0.0.1:70000" }, `bind address "127.0.0.1:70000": port "70000" is not a number in 0..65535`},
		{"bind hostname", func(c *Config) { c.BindAddr = "localhost:7946" }, `bind address "localhost:7946": host "localhost" is not an IP address`},
		{"advertise bad", func(c *Config) { c.AdvertiseAddr = "1.2.3.4:x" }, `advertise address "1.2.3.4:x"`},
		{"http bad", func(c *Config) { c.HTTPAddr = "nohost" }, `HTTP address "nohost"`},
		{"http too long", func(c *Config) { c.HTTPAddr = strings.Repeat("h", 600) + ":80" }, "node metadata would be"},
		{"empty join", func(c *Config) { c.Join = []string{"1.2.3.4:7946", ""} }, "join address is empty"},
		{"unknown profile", func(c *Config) { c.Profile = "lna" }, `unknown gossip profile "lna": want lan, local or wan`},
		{"partitions", func(c *Config) { c.Partitions = 0 }, "partitions must be > 0, got 0"},
		{"negative probe", func(c *Config) { c.ProbeInterval = -time.Second }, "probe interval must not be negative"},
		{"negative push/pull", func(c *Config) { c.PushPullInterval = -1 }, "push/pull interval must not be negative"},
		{"negative suspicion", func(c *Config) { c.SuspicionMult = -1 }, "suspicion multiplier must not be negative"},
		{"retry min", func(c *Config) { c.JoinRetryMin = 0 }, "join retry minimum must be > 0"},
		{"retry max", func(c *Config) { c.JoinRetryMax = time.Millisecond }, "join retry maximum 1ms is below the minimum 1s"},
		{"leave timeout", func(c *Config) { c.LeaveTimeout = 0 }, "leave timeout must be > 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %q, want ErrInvalidConfig mentioning %q", err, tc.want)
			}
			if _, err := New(c); err == nil {
				t.Error("New accepted the invalid config")
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	for _, mutate := range []func(*Config){
		func(c *Config) { c.Profile = "" },
		func(c *Config) { c.Profile = ProfileWAN },
		func(c *Config) { c.BindAddr = ":7946" },
		func(c *Config) { c.BindAddr = "[::1]:0" },
		func(c *Config) { c.HTTPAddr = "node1.example:8848" },
		func(c *Config) { c.AdvertiseAddr = "10.0.0.1:0" },
	} {
		c := validConfig()
		mutate(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", c, err)
		}
	}
}

func TestMemberlistConfig(t *testing.T) {
	c := validConfig()
	c.Profile = ProfileLocal
	c.BindAddr = "127.0.0.1:7000"
	c.ProbeInterval = 123 * time.Millisecond
	c.Secret = "s"
	mc := c.memberlistConfig()
	if mc.BindAddr != "127.0.0.1" || mc.BindPort != 7000 || mc.AdvertisePort != 7000 || mc.AdvertiseAddr != "" {
		t.Errorf("addresses: bind %s:%d advertise %q:%d", mc.BindAddr, mc.BindPort, mc.AdvertiseAddr, mc.AdvertisePort)
	}
	if mc.ProbeInterval != 123*time.Millisecond {
		t.Errorf("ProbeInterval override lost: %s", mc.ProbeInterval)
	}
	if mc.ProbeTimeout != 200*time.Millisecond || mc.SuspicionMult != 3 {
		t.Errorf("local profile not the base: timeout %s mult %d", mc.ProbeTimeout, mc.SuspicionMult)
	}
	key := sha256.Sum256([]byte("s"))
	if !bytes.Equal(mc.SecretKey, key[:]) || len(mc.SecretKey) != 32 {
		t.Errorf("SecretKey = %x, want sha256 of the secret", mc.SecretKey)
	}

	c.AdvertiseAddr = "10.1.1.1:9000"
	c.Secret = ""
	mc = c.memberlistConfig()
	if mc.AdvertiseAddr != "10.1.1.1" || mc.AdvertisePort != 9000 || mc.SecretKey != nil {
		t.Errorf("advertise %q:%d key %x", mc.AdvertiseAddr, mc.AdvertisePort, mc.SecretKey)
	}
}

func TestReconnectDefaults(t *testing.T) {
	c := DefaultConfig()
	if got := c.reconnectInterval(); got != 10*time.Second {
		t.Errorf("lan reconnect interval = %s, want 10s", got)
	}
	c.Profile = ProfileLocal
	if got := c.reconnectInterval(); got != time.Second {
		t.Errorf("local reconnect interval = %s, want 1s", got)
	}
	c.ReconnectInterval = 3 * time.Second
	if got := c.reconnectInterval(); got != 3*time.Second {
		t.Errorf("set reconnect interval = %s, want 3s", got)
	}
	if got := (Config{}).reconnectTimeout(); got != 24*time.Hour {
		t.Errorf("zero reconnect timeout = %s, want 24h", got)
	}
	c.Name, c.HTTPAddr = "n", "127.0.0.1:8848"
	c.ReconnectTimeout = -time.Second
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "reconnect timeout") {
		t.Errorf("negative reconnect timeout: Validate() = %v", err)
	}
}
