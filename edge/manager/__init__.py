"""The station manager's tools behind `edge records`, `edge report daily`, `edge export` and
`edge cache show|import`: queries, the daily report and the filling ledger (ledger.py), the
regulator's documents as a workbook and a PDF (documents/), the cylinder-ledger import
(cache_import.py), and finding a cylinder from whatever identifier is at hand (identify.py).
The staff register they share with the lanes and the staff's web app is edge.store.staff;
`edge check-config` is edge.config.preflight."""
