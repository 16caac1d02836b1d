package main

import (
	"fmt"
	"os"
	"strconv"
)

func add(a, b int) int { return a + b }

func main() {
	a, _ := strconv.Atoi(os.Args[1])
	b, _ := strconv.Atoi(os.Args[2])
	fmt.Println(add(a, b))
}
