// Command compose-oracle loads a compose project with compose-spec's reference loader
// (github.com/compose-spec/compose-go/v2) the way `docker compose config` does, and prints
// per service the fields Kompox's differential test compares, as JSON on stdout.
//
// Usage:
//
//	compose-oracle -f compose.yml [--project-directory DIR] [--env-file FILE]... [--profile P]...
//
// Interpolation variables come from this process's environment, then from the --env-file
// files (default: .env in the project directory), the environment winning, as in Docker
// Compose. A project the loader refuses prints {"error": "..."} and exits 0, so the caller
// can compare refusals too; a usage error exits 2.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type port struct {
	Target      uint32 `json:"target"`
	Published   string `json:"published,omitempty"`
	HostIP      string `json:"host_ip,omitempty"`
	Protocol    string `json:"protocol"`
	AppProtocol string `json:"app_protocol,omitempty"`
}

type healthcheck struct {
	Test []string `json:"test"`
	// Durations in seconds (nil when unset); the loader's own parse of "1m30s" etc.
	Interval      *float64 `json:"interval"`
	Timeout       *float64 `json:"timeout"`
	StartPeriod   *float64 `json:"start_period"`
	StartInterval *float64 `json:"start_interval"`
	Retries       *uint64  `json:"retries"`
	Disable       bool     `json:"disable"`
}

type service struct {
	Image string `json:"image"`
	// null when unset, [] when set empty (which overrides the image's).
	Command    []string `json:"command"`
	Entrypoint []string `json:"entrypoint"`
	// After interpolation and env_file resolution; variables without a value (not set
	// anywhere) are left out, as Docker leaves them out of the container.
	Environment map[string]string `json:"environment"`
	Ports       []port            `json:"ports"`
	// As written (the loader keeps expose entries as strings: "3000", "3000-3002/udp").
	Expose      []string     `json:"expose"`
	WorkingDir  string       `json:"working_dir"`
	User        string       `json:"user"`
	Healthcheck *healthcheck `json:"healthcheck"`
}

type output struct {
	Name     string             `json:"name"`
	Services map[string]service `json:"services"`
	// Services whose profiles are not active (Compose does not start them).
	Disabled []string `json:"disabled,omitempty"`
}

func seconds(d *types.Duration) *float64 {
	if d == nil {
		return nil
	}
	s := time.Duration(*d).Seconds()
	return &s
}

func convert(s types.ServiceConfig) service {
	out := service{
		Image:       s.Image,
		Command:     s.Command,
		Entrypoint:  s.Entrypoint,
		Environment: map[string]string{},
		Ports:       []port{},
		Expose:      []string(s.Expose),
		WorkingDir:  s.WorkingDir,
		User:        s.User,
	}
	if out.Expose == nil {
		out.Expose = []string{}
	}
	for k, v := range s.Environment {
		if v != nil {
			out.Environment[k] = *v
		}
	}
	for _, p := range s.Ports {
		out.Ports = append(out.Ports, port{
			Target: p.Target, Published: p.Published, HostIP: p.HostIP,
			Protocol: p.Protocol, AppProtocol: p.AppProtocol,
		})
	}
	if h := s.HealthCheck; h != nil {
		out.Healthcheck = &healthcheck{
			Test: h.Test, Interval: seconds(h.Interval), Timeout: seconds(h.Timeout),
			StartPeriod: seconds(h.StartPeriod), StartInterval: seconds(h.StartInterval),
			Retries: h.Retries, Disable: h.Disable,
		}
	}
	return out
}

func main() {
	var files, envFiles, profiles list
	var projectDir string
	flag.Var(&files, "f", "compose file (repeatable)")
	flag.StringVar(&projectDir, "project-directory", "", "project directory (default: the first compose file's)")
	flag.Var(&envFiles, "env-file", "file of interpolation variables (repeatable; default .env in the project directory)")
	flag.Var(&profiles, "profile", "profile to enable (repeatable)")
	flag.Parse()
	if len(files) == 0 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: compose-oracle -f compose.yml [--project-directory DIR] [--env-file FILE]... [--profile P]...")
		os.Exit(2)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	fail := func(err error) {
		_ = enc.Encode(map[string]string{"error": err.Error()})
		os.Exit(0)
	}
	// The options docker compose (cmd/compose) builds for `config`, minus COMPOSE_FILE and
	// the default file search: an explicit -f is always given.
	opts, err := cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(projectDir),
		cli.WithOsEnv,
		cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv,
		cli.WithDefaultProfiles(profiles...),
		cli.WithResolvedPaths(true),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		fail(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out := output{Name: project.Name, Services: map[string]service{}}
	for name, s := range project.Services {
		out.Services[name] = convert(s)
	}
	for name := range project.DisabledServices {
		out.Disabled = append(out.Disabled, name)
	}
	sort.Strings(out.Disabled)
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
