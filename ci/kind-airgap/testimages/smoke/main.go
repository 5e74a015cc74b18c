// Command smoke is the tiny test program of the cluster smoke test (one static binary,
// standard library only, in a scratch image). Its DNS lookups use Go's own resolver, which
// honours the pod's /etc/resolv.conf search list, so short Service names resolve as in any pod.
//
//	smoke serve [-addr :8080] [-text TEXT]   HTTP server: GET / answers TEXT and the pod name
//	smoke lookup NAME...                      print "NAME IP..." for each name
//	smoke get URL                             print the body of GET URL
//	smoke sleep SECONDS
//	smoke write FILE TEXT                     write TEXT and a newline to FILE
//	smoke cat FILE...                         print files
//	smoke CMD ARGS... + CMD ARGS...           run several commands in order (no shell needed)
//
// lookup and get retry for up to -retry (default 30s): a Service can take a moment to be
// programmed. Every loop is bounded.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	// "+" separates commands: smoke lookup NAME + get URL
	var step []string
	for _, a := range append(os.Args[1:], "+") {
		if a != "+" {
			step = append(step, a)
			continue
		}
		if len(step) == 0 {
			usage()
		}
		if err := run(step[0], step[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "smoke:", err)
			os.Exit(1)
		}
		step = nil
	}
}

func run(cmd string, args []string) error {
	switch cmd {
	case "serve":
		return serve(args)
	case "lookup":
		return lookup(args)
	case "get":
		return get(args)
	case "sleep":
		return sleep(args)
	case "write":
		if len(args) != 2 {
			return fmt.Errorf("write needs FILE TEXT")
		}
		return os.WriteFile(args[0], []byte(args[1]+"\n"), 0o644)
	case "cat":
		for _, f := range args {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			os.Stdout.Write(b)
		}
		return nil
	}
	usage()
	return nil
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: smoke serve|lookup|get|sleep ...")
	os.Exit(2)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", ":8080", "listen address")
	text := fs.String("text", "hello from smoke", "response text")
	_ = fs.Parse(args)
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%s (pod %s)\n", *text, host)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	fmt.Printf("smoke: serving on %s\n", *addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func retryFlags(name string, args []string) (*flag.FlagSet, *time.Duration) {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	retry := fs.Duration("retry", 30*time.Second, "keep retrying for this long")
	_ = fs.Parse(args)
	return fs, retry
}

// withRetry runs f every second until it succeeds or the deadline passes.
func withRetry(limit time.Duration, f func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Second)
	}
}

func lookup(args []string) error {
	fs, retry := retryFlags("lookup", args)
	for _, name := range fs.Args() {
		var addrs []string
		err := withRetry(*retry, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var err error
			addrs, err = net.DefaultResolver.LookupHost(ctx, name)
			return err
		})
		if err != nil {
			return err
		}
		fmt.Printf("%s %s\n", name, strings.Join(addrs, " "))
	}
	return nil
}

func get(args []string) error {
	fs, retry := retryFlags("get", args)
	if fs.NArg() != 1 {
		return fmt.Errorf("get needs one URL")
	}
	client := &http.Client{Timeout: 5 * time.Second}
	var body []byte
	err := withRetry(*retry, func() error {
		resp, err := client.Get(fs.Arg(0))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s", fs.Arg(0), resp.Status)
		}
		return err
	})
	if err != nil {
		return err
	}
	os.Stdout.Write(body)
	return nil
}

func sleep(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("sleep needs SECONDS")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	time.Sleep(time.Duration(n) * time.Second)
	return nil
}
