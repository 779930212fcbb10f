"""The audit of predictions: encoded rows (`rows`), the write-behind queue (`writer`) and the
child process that stores them off the serving process's GIL (`process`)."""
