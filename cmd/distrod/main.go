// Command distrod runs and inspects distrod registry nodes.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	app := &cli.App{Name: "distrod", Usage: "AP service registry speaking the Nacos v1 API"}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "distrod:", err)
		os.Exit(1)
	}
}
