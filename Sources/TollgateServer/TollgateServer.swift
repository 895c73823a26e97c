// TollgateServer: the composition root (buildApplication builds every client, repository and service), the admin API, configuration and policy files.
