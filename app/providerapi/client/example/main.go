// Command example is a provider's first program against the CarData
// provider API, written only with the generated client
// (cardata/app/providerapi/client) and golang.org/x/oauth2: it gets an
// access token with the client credentials grant, asks what a vehicle can
// deliver, reads a data container's latest values for it, and with -listen
// receives pushes and verifies each one's signature before trusting it.
//
// Against `make run` (the demo insurer's API client and one of its vehicles):
//
//	export CARDATA_URL=http://127.0.0.1:8080
//	export CARDATA_CLIENT_ID=demo-insurer CARDATA_CLIENT_SECRET=demo-insurer-secret
//	go run ./app/providerapi/client/example -vin WBA... -container 1
//
// To receive pushes as well, give the endpoint's signing secret and where to
// listen, and register http://<that address>/webhook as a webhook endpoint:
//
//	CARDATA_WEBHOOK_SECRET=whsec_... go run ./app/providerapi/client/example -vin WBA... -container 1 -listen 127.0.0.1:9090
//
// The program is run against a real server by its test (main_test.go), so
// what it shows keeps working.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"cardata/app/providerapi/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

// run is the whole program; ctx may carry the HTTP client to use
// (oauth2.HTTPClient), as with any golang.org/x/oauth2 configuration.
func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	vin := fs.String("vin", "", "the vehicle's VIN")
	container := fs.Int("container", 0, "the id of an approved data container the vehicle's owner consented to")
	listen := fs.String("listen", "", "after reading, receive pushes at http://ADDR/webhook (needs CARDATA_WEBHOOK_SECRET)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base := getenv("CARDATA_URL")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	if *vin == "" || *container == 0 {
		return errors.New("-vin and -container are required")
	}

	// Tokens: the client credentials grant at /oauth/token. The HTTP client
	// gets a token when it needs one and a new one before it expires.
	creds := clientcredentials.Config{ClientID: getenv("CARDATA_CLIENT_ID"), ClientSecret: getenv("CARDATA_CLIENT_SECRET"),
		TokenURL: base + "/oauth/token"}
	api, err := client.NewClientWithResponses(base, client.WithHTTPClient(creds.Client(ctx)))
	if err != nil {
		return err
	}

	// What can the vehicle deliver, as of now? (Not billed.)
	caps, err := api.GetCapabilitiesWithResponse(ctx, *vin)
	if err != nil {
		return err
	}
	if caps.JSON200 == nil {
		return fmt.Errorf("capabilities: %s", problem(caps.HTTPResponse, caps.Body))
	}
	fmt.Fprintf(out, "%s (%s, market %s): eligible %t\n", caps.JSON200.Vin, caps.JSON200.Brand, caps.JSON200.Market, caps.JSON200.Eligible)

	// The container's latest values: each with the time the vehicle read it,
	// null for a key never received. A read with values is billed once,
	// under the delivery id in the CarData-Delivery-Id header.
	data, err := api.GetTelematicDataWithResponse(ctx, *vin, &client.GetTelematicDataParams{ContainerId: *container})
	if err != nil {
		return err
	}
	if data.JSON200 == nil {
		return fmt.Errorf("telematic data: %s", problem(data.HTTPResponse, data.Body))
	}
	keys := make([]string, 0, len(data.JSON200.TelematicData))
	for k := range data.JSON200.TelematicData {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := data.JSON200.TelematicData[k]
		if v == nil {
			fmt.Fprintf(out, "  %s: no value received yet\n", k)
			continue
		}
		value, _ := json.Marshal(v.Value)
		unit := ""
		if v.Unit != nil {
			unit = " " + *v.Unit
		}
		fmt.Fprintf(out, "  %s = %s%s (read %s)\n", k, value, unit, v.Timestamp.UTC().Format(time.RFC3339))
	}
	if h := data.Headers200; h != nil && h.CarDataDeliveryId != nil {
		fmt.Fprintf(out, "delivery %s\n", *h.CarDataDeliveryId)
	}

	if *listen == "" {
		return nil
	}
	return receive(ctx, *listen, getenv("CARDATA_WEBHOOK_SECRET"), out)
}

// receive serves pushes at /webhook until ctx ends. Each push is verified
// with the endpoint's secret before anything in it is used; a push that does
// not verify is answered 401 (CarData retries only on its own failures, a
// forger gets nothing). 2xx tells CarData the push arrived: it is not sent
// again.
func receive(ctx context.Context, addr, secret string, out io.Writer) error {
	if secret == "" {
		return errors.New("-listen needs CARDATA_WEBHOOK_SECRET (the endpoint's whsec_ secret)")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhook", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		msg, err := client.VerifyWebhook(secret, r.Header, body, time.Now())
		if err != nil {
			fmt.Fprintf(out, "push refused: %v\n", err)
			http.Error(w, "signature does not verify", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(out, "push %s verified: %s %s\n", msg.ID, msg.Type, msg.Data)
		w.WriteHeader(http.StatusNoContent)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	fmt.Fprintf(out, "listening for pushes at http://%s/webhook\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// problem describes a refusal: the problem document's code and detail
// (RFC 9457), or the status when the body is not one.
func problem(res *http.Response, body []byte) string {
	var p client.Problem
	if json.Unmarshal(body, &p) == nil && p.Code != "" {
		if p.Detail != nil {
			return fmt.Sprintf("%d %s: %s", p.Status, p.Code, *p.Detail)
		}
		return fmt.Sprintf("%d %s", p.Status, p.Code)
	}
	return res.Status
}
