"""stepgraph's pure core: graph spec, validation, conditions, references and the compiler to ASL."""
