package main

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

// The registry commands speak the Nacos v1 naming API of any node, as a Nacos client would.

const nacosNS = "/nacos/v1/ns"

func namespaceFlag() cli.Flag {
	return &cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "namespace id (default: public)"}
}

func serviceFlags() []cli.Flag {
	return []cli.Flag{
		httpFlag(), timeoutFlag(), namespaceFlag(),
		&cli.StringFlag{Name: "service", Aliases: []string{"s"}, Required: true, Usage: "service name"},
		&cli.StringFlag{Name: "group", Aliases: []string{"g"}, Value: "DEFAULT_GROUP", Usage: "group name"},
	}
}

func instanceFlags() []cli.Flag {
	return append(serviceFlags(),
		&cli.StringFlag{Name: "ip", Required: true, Usage: "instance IP"},
		&cli.IntFlag{Name: "port", Required: true, Usage: "instance port"},
		&cli.StringFlag{Name: "cluster", Value: "DEFAULT", Usage: "cluster name"},
	)
}

func registryCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:  "instances",
			Usage: "print the instances of a service",
			Flags: append(serviceFlags(),
				&cli.StringFlag{Name: "clusters", Usage: "comma-separated cluster filter"},
				&cli.BoolFlag{Name: "healthy-only", Usage: "only healthy instances"},
			),
			Action: runInstances,
		},
		{
			Name:   "services",
			Usage:  "print the services of a namespace with their instance counts",
			Flags:  []cli.Flag{httpFlag(), timeoutFlag(), namespaceFlag()},
			Action: runServices,
		},
		{
			Name:  "register",
			Usage: "register (or update) an ephemeral instance; it expires unless something sends beats",
			Flags: append(instanceFlags(),
				&cli.Float64Flag{Name: "weight", Value: 1, Usage: "weight (0-10000)"},
				&cli.StringFlag{Name: "metadata", Usage: `metadata as JSON ({"k":"v"}) or k=v,k2=v2`},
			),
			Action: runRegister,
		},
		{
			Name:   "deregister",
			Usage:  "remove an instance",
			Flags:  instanceFlags(),
			Action: runDeregister,
		},
	}
}

func serviceQuery(c *cli.Context) url.Values {
	q := url.Values{}
	if s := c.String("service"); s != "" {
		q.Set("serviceName", s)
	}
	if g := c.String("group"); g != "" {
		q.Set("groupName", g)
	}
	if ns := c.String("namespace"); ns != "" {
		q.Set("namespaceId", ns)
	}
	return q
}

type instanceList struct {
	Name  string `json:"name"`
	Hosts []struct {
		IP          string            `json:"ip"`
		Port        int               `json:"port"`
		ClusterName string            `json:"clusterName"`
		Weight      float64           `json:"weight"`
		Healthy     bool              `json:"healthy"`
		Enabled     bool              `json:"enabled"`
		Ephemeral   bool              `json:"ephemeral"`
		Metadata    map[string]string `json:"metadata"`
	} `json:"hosts"`
}

func runInstances(c *cli.Context) error {
	client := &http.Client{Timeout: c.Duration("timeout")}
	q := serviceQuery(c)
	if cl := c.String("clusters"); cl != "" {
		q.Set("clusters", cl)
	}
	if c.Bool("healthy-only") {
		q.Set("healthyOnly", "true")
	}
	var list instanceList
	if err := getJSON(client, c.String("http"), nacosNS+"/instance/list?"+q.Encode(), &list); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IP\tPORT\tCLUSTER\tWEIGHT\tHEALTHY\tENABLED\tMETADATA\t")
	for _, h := range list.Hosts {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%g\t%t\t%t\t%s\t\n", h.IP, h.Port, h.ClusterName, h.Weight, h.Healthy, h.Enabled, metadataString(h.Metadata))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%d instances of %s\n", len(list.Hosts), list.Name)
	return nil
}

func metadataString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

type catalogPage struct {
	Count       int `json:"count"`
	ServiceList []struct {
		Name                 string `json:"name"`
		GroupName            string `json:"groupName"`
		ClusterCount         int    `json:"clusterCount"`
		IPCount              int    `json:"ipCount"`
		HealthyInstanceCount int    `json:"healthyInstanceCount"`
	} `json:"serviceList"`
}

func runServices(c *cli.Context) error {
	client := &http.Client{Timeout: c.Duration("timeout")}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSERVICE\tCLUSTERS\tINSTANCES\tHEALTHY\t")
	const pageSize = 500
	total := 0
	for pageNo := 1; ; pageNo++ {
		q := url.Values{"pageNo": {strconv.Itoa(pageNo)}, "pageSize": {strconv.Itoa(pageSize)}}
		if ns := c.String("namespace"); ns != "" {
			q.Set("namespaceId", ns)
		}
		var page catalogPage
		if err := getJSON(client, c.String("http"), nacosNS+"/catalog/services?"+q.Encode(), &page); err != nil {
			return cli.Exit(err.Error(), 1)
		}
		for _, s := range page.ServiceList {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t\n", s.GroupName, s.Name, s.ClusterCount, s.IPCount, s.HealthyInstanceCount)
		}
		total = page.Count
		if len(page.ServiceList) < pageSize || pageNo*pageSize >= page.Count {
			break
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%d services\n", total)
	return nil
}

func instanceForm(c *cli.Context) url.Values {
	f := serviceQuery(c)
	f.Set("ip", c.String("ip"))
	f.Set("port", strconv.Itoa(c.Int("port")))
	f.Set("clusterName", c.String("cluster"))
	f.Set("ephemeral", "true")
	return f
}

func runRegister(c *cli.Context) error {
	f := instanceForm(c)
	f.Set("weight", strconv.FormatFloat(c.Float64("weight"), 'g', -1, 64))
	if md := c.String("metadata"); md != "" {
		f.Set("metadata", md)
	}
	return instanceWrite(c, http.MethodPost, f)
}

func runDeregister(c *cli.Context) error { return instanceWrite(c, http.MethodDelete, instanceForm(c)) }

func instanceWrite(c *cli.Context, method string, f url.Values) error {
	client := &http.Client{Timeout: c.Duration("timeout")}
	path := nacosNS + "/instance"
	if method == http.MethodDelete {
		path += "?" + f.Encode() // Nacos clients send DELETE parameters in the query
		f = nil
	}
	body, err := call(client, method, c.String("http"), path, f)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	if out := strings.TrimSpace(string(body)); out != "" {
		fmt.Fprintln(c.App.Writer, out)
	}
	return nil
}
