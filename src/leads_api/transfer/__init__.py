"""Lead objects in and out of files: `leads-api import` and `leads-api export`.

`formats` reads and writes JSONL and CSV, `rows` turns a lead object into a `leads` row,
`importer` loads a file in one transaction, `exporter` streams a query's leads to a file.
"""
