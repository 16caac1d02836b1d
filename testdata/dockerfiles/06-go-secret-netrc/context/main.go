package main

import "fmt"

var version = "dev"

func main() {
	fmt.Printf("hello from go %s\n", version)
}
