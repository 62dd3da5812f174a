package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/admin"
	"github.com/rpcproxy/rpcproxy/internal/config"
)

// defaultAdminAddr is where `rpcproxy status` looks for the admin listener
// when --admin is not given (the address the README's examples bind).
const defaultAdminAddr = "127.0.0.1:9090"

// statusTimeout bounds the whole status request.
const statusTimeout = 5 * time.Second

// status prints the backends of a running proxy, read from its admin API,
// as an aligned table.
func status(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin", defaultAdminAddr, "the proxy's admin listener, host:port or a URL")
	token := fs.String("token", "", "admin token (default $"+config.EnvAdminToken+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("status: unexpected argument %q", fs.Arg(0))
	}
	if *token == "" {
		*token = os.Getenv(config.EnvAdminToken)
	}
	var backends []admin.Backend
	if err := adminGet(*addr, "/v1/backends", *token, &backends); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	return printBackends(stdout, backends, time.Now())
}

// adminGet fetches path from the admin listener at addr and decodes its JSON.
func adminGet(addr, path, token string, out any) error {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequest(http.MethodGet, strings.TrimSuffix(base, "/")+path, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: statusTimeout}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return fmt.Errorf("%s: %s: %s", path, resp.Status, e.Error)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: undecodable answer: %w", path, err)
	}
	return nil
}

// printBackends writes the backends as a table, then the error of each
// backend whose last check failed.
func printBackends(w io.Writer, backends []admin.Backend, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tSTATE\tSOURCE\tWEIGHT\tSHARE\tSESSIONS\tCLIENTS\tLAST CHECK\tVERSION")
	var failed []admin.Backend
	for _, b := range backends {
		check := "-"
		if c := b.LastCheck; c.Time != nil {
			result := "ok"
			if !c.OK {
				result = "failed"
				failed = append(failed, b)
			}
			check = fmt.Sprintf("%s %.1fms %s ago", result, c.LatencyMS, now.Sub(*c.Time).Round(time.Second))
		}
		ver := "-"
		if b.Version != "" || b.ProtocolVersion != 0 {
			ver = fmt.Sprintf("%s (protocol %d)", b.Version, b.ProtocolVersion)
		}
		state := b.State
		if b.AdminDrain && state != "draining" {
			state += " (drain set)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1f%%\t%d\t%d\t%s\t%s\n",
			b.Address, state, b.Source, b.Weight, 100*b.Share, b.Sessions, b.Clients, check, ver)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, b := range failed {
		fmt.Fprintf(w, "%s: last check failed: %s\n", b.Address, b.LastCheck.Error)
	}
	return nil
}
