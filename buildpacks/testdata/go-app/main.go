// Command myservice is a minimal web service deployed by hop3.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-version" {
		fmt.Println("myservice 1.0")
		return
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "Hello from a Go service on hop3")
	})
	log.Fatal(http.ListenAndServe(":"+os.Getenv("PORT"), nil))
}
