// Command cardata is the one binary of the CarData partner back office:
// `cardata serve`, `cardata migrate`, `cardata demo`, and admin commands.
package main

import "cardata/app/cli"

func main() { cli.Run() }
