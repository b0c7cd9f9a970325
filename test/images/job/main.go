// Command job is the test ground's one-shot program, for Jobs (a migration that passes or fails): it writes the
// lines of OUTPUT to stdout, waits SLEEP_MS milliseconds, and exits with EXIT_CODE.
//
//	OUTPUT     lines to write, separated by "|" (default "job: done")
//	SLEEP_MS   how long to run first (default 0)
//	EXIT_CODE  the exit status (default 0)
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	output := os.Getenv("OUTPUT")
	if output == "" {
		output = "job: done"
	}
	if ms, err := strconv.Atoi(os.Getenv("SLEEP_MS")); err == nil && ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	for _, line := range strings.Split(output, "|") {
		fmt.Println(line)
	}
	code, err := strconv.Atoi(os.Getenv("EXIT_CODE"))
	if err != nil {
		code = 0
	}
	os.Exit(code)
}
