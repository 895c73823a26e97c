// TollgateRules: the rules engine — budget evaluation on the leader, suspension adapters (Tollgate, Azure APIM), signed webhook delivery; decisions over the Store's repository protocols, no SQL.
