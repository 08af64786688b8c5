"""One module per remote system. Nothing else imports the SDKs."""
