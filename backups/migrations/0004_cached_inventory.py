from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("backups", "0003_failures_and_own_snapshots")]

    operations = [migrations.RenameModel("InventorySnapshot", "CachedInventory")]
