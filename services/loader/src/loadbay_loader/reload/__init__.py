"""The reload path: a dataset's files from the landing zone into its table, replaced (Reload)
or added to (Append) in one transaction, then copied to the DLZ."""
