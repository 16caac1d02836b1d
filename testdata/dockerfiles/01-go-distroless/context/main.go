package main

import (
	"fmt"
	"os"
)

var version = "dev"

func main() {
	fmt.Printf("hello from go %s as %d\n", version, os.Getuid())
}
