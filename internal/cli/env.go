package cli

import "os"

// lookupEnv is os.LookupEnv; tests replace it to run commands hermetically.
var lookupEnv = os.LookupEnv
