// Command ferretdb runs FerretDB v1.24.2 on its SQLite backend for ringcast's tests.
//
// Why a wrapper and not `go install .../cmd/ferretdb@v1.24.2`: that binary panics in
// build/version's init() because the module zip lacks the generated version.txt; the
// check only runs when the main module is FerretDB itself, so importing the embeddable
// package from our own module avoids it (docs: /work/shared/notes/deps-and-build.md §1).
//
// Usage: ferretdb -listen 127.0.0.1:PORT -dir DIR
// DIR must exist; each database becomes one .sqlite file in it. SIGTERM or SIGINT stops it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("dir", "", "existing directory for the SQLite files")
	verbose := flag.Bool("v", false, "log at info level instead of warn")
	flag.Parse()

	if *dir == "" {
		fmt.Fprintln(os.Stderr, "ferretdb: -dir is required")
		os.Exit(2)
	}
	if st, err := os.Stat(*dir); err != nil || !st.IsDir() {
		fmt.Fprintf(os.Stderr, "ferretdb: -dir %q is not an existing directory\n", *dir)
		os.Exit(2)
	}

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// The SQLite backend wants a directory URL with a trailing slash.
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %s\n", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if err := f.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %s\n", err)
		os.Exit(1)
	}
}
