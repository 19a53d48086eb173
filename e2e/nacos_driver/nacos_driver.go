// Command nacos_driver is one application using the real Nacos client,
// github.com/nacos-group/nacos-sdk-go v1.1.6, driven by the e2e tests over
// stdin/stdout. It runs in its own process because the client cannot be
// stopped (its push receiver, refresh loop and beat goroutines run forever)
// and is not race-clean; stopping "the application" is killing this process,
// which is exactly what the expiry test needs.
//
// Usage: nacos_driver -server 127.0.0.1:8848 -dir DIR
//
// Each stdin line is a JSON request {"id","op",...}; each reply is one JSON
// line {"id","err",...} on stdout. Subscribe callbacks are written as lines
// {"event":"subscribe","service","hosts","err"} whenever the client calls them.
// The process exits when stdin is closed.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/nacos-group/nacos-sdk-go/clients"
	"github.com/nacos-group/nacos-sdk-go/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/common/constant"
	"github.com/nacos-group/nacos-sdk-go/model"
	"github.com/nacos-group/nacos-sdk-go/vo"
)

// request is one command; the fields used depend on op.
type request struct {
	ID          int               `json:"id"`
	Op          string            `json:"op"`
	Service     string            `json:"service"`
	Group       string            `json:"group,omitempty"`
	IP          string            `json:"ip,omitempty"`
	Port        uint64            `json:"port,omitempty"`
	Weight      float64           `json:"weight,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	HealthyOnly bool              `json:"healthyOnly,omitempty"`
	PageSize    uint32            `json:"pageSize,omitempty"`
}

// Host is the part of an instance the tests check.
type Host struct {
	IP         string            `json:"ip"`
	Port       uint64            `json:"port"`
	Healthy    bool              `json:"healthy"`
	Enabled    bool              `json:"enabled"`
	Weight     float64           `json:"weight"`
	InstanceID string            `json:"instanceId"`
	Metadata   map[string]string `json:"metadata"`
}

// reply answers a request, or (Event set) reports a subscribe callback.
type reply struct {
	ID      int      `json:"id,omitempty"`
	Event   string   `json:"event,omitempty"`
	Err     string   `json:"err,omitempty"`
	OK      bool     `json:"ok,omitempty"`
	Service string   `json:"service,omitempty"`
	Hosts   []Host   `json:"hosts,omitempty"`
	Count   int64    `json:"count,omitempty"`
	Doms    []string `json:"doms,omitempty"`
}

func main() {
	server := flag.String("server", "", "host:port of the distrod node the client talks to")
	dir := flag.String("dir", "", "directory for the client's log and cache")
	flag.Parse()
	if err := run(*server, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "nacos_driver:", err)
		os.Exit(1)
	}
}

func run(server, dir string) error {
	host, portStr, err := net.SplitHostPort(server)
	if err != nil {
		return fmt.Errorf("-server %q: %w", server, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return fmt.Errorf("-server %q: port: %w", server, err)
	}
	if dir == "" {
		return fmt.Errorf("-dir is required")
	}
	client, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: &constant.ClientConfig{
			TimeoutMs:           5000,
			NamespaceId:         "", // public
			LogDir:              dir + "/log",
			CacheDir:            dir + "/cache",
			NotLoadCacheAtStart: true,
			LogLevel:            "error",
		},
		ServerConfigs: []constant.ServerConfig{{IpAddr: host, Port: port, ContextPath: "/nacos", Scheme: "http"}},
	})
	if err != nil {
		return fmt.Errorf("new naming client: %w", err)
	}

	var outMu sync.Mutex
	out := json.NewEncoder(os.Stdout)
	write := func(r reply) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = out.Encode(r)
	}

	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var req request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			write(reply{Err: fmt.Sprintf("bad request %q: %v", sc.Text(), err)})
			continue
		}
		r := handle(client, req, write)
		r.ID = req.ID
		write(r)
	}
	return sc.Err()
}

func handle(c naming_client.INamingClient, req request, write func(reply)) reply {
	var r reply
	var err error
	switch req.Op {
	case "register":
		r.OK, err = c.RegisterInstance(vo.RegisterInstanceParam{
			Ip: req.IP, Port: req.Port, ServiceName: req.Service, GroupName: req.Group,
			Weight: req.Weight, Enable: true, Healthy: true, Ephemeral: true, Metadata: req.Metadata,
		})
	case "deregister":
		r.OK, err = c.DeregisterInstance(vo.DeregisterInstanceParam{
			Ip: req.IP, Port: req.Port, ServiceName: req.Service, GroupName: req.Group, Ephemeral: true,
		})
	case "subscribe":
		service := req.Service
		err = c.Subscribe(&vo.SubscribeParam{
			ServiceName: req.Service, GroupName: req.Group,
			SubscribeCallback: func(services []model.SubscribeService, cbErr error) {
				ev := reply{Event: "subscribe", Service: service, Hosts: []Host{}}
				if cbErr != nil {
					ev.Err = cbErr.Error()
				}
				for _, s := range services {
					ev.Hosts = append(ev.Hosts, Host{IP: s.Ip, Port: s.Port, Healthy: s.Healthy, Enabled: s.Enable,
						Weight: s.Weight, InstanceID: s.InstanceId, Metadata: s.Metadata})
				}
				write(ev)
			},
		})
	case "selectInstances":
		var ins []model.Instance
		ins, err = c.SelectInstances(vo.SelectInstancesParam{ServiceName: req.Service, GroupName: req.Group, HealthyOnly: req.HealthyOnly})
		r.Hosts = hosts(ins)
	case "selectAllInstances":
		var ins []model.Instance
		ins, err = c.SelectAllInstances(vo.SelectAllInstancesParam{ServiceName: req.Service, GroupName: req.Group})
		r.Hosts = hosts(ins)
	case "selectOneHealthyInstance":
		var in *model.Instance
		in, err = c.SelectOneHealthyInstance(vo.SelectOneHealthInstanceParam{ServiceName: req.Service, GroupName: req.Group})
		if in != nil {
			r.Hosts = hosts([]model.Instance{*in})
		}
	case "getService":
		var s model.Service
		s, err = c.GetService(vo.GetServiceParam{ServiceName: req.Service, GroupName: req.Group})
		r.Service, r.Hosts = s.Name, hosts(s.Hosts)
	case "getAllServicesInfo":
		var l model.ServiceList
		l, err = c.GetAllServicesInfo(vo.GetAllServiceInfoParam{GroupName: req.Group, PageNo: 1, PageSize: req.PageSize})
		r.Count, r.Doms = l.Count, l.Doms
	default:
		err = fmt.Errorf("unknown op %q", req.Op)
	}
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

func hosts(ins []model.Instance) []Host {
	out := make([]Host, 0, len(ins))
	for _, in := range ins {
		out = append(out, Host{IP: in.Ip, Port: in.Port, Healthy: in.Healthy, Enabled: in.Enable,
			Weight: in.Weight, InstanceID: in.InstanceId, Metadata: in.Metadata})
	}
	return out
}
