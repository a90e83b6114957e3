<dl class="cylinder" id="cylinder">
  <dt>气瓶 Cylinder</dt><dd>{{c['id']}}</dd>
  <dt>产品编号 Stamp</dt><dd>{{c['product_no'] or '-'}}</dd>
  <dt>型号 Model</dt><dd>{{c['model'] or '-'}}</dd>
  <dt>介质 Medium</dt><dd>{{c['medium'] or '-'}}</dd>
  <dt>产权单位 Owner</dt><dd>{{c['owner_unit'] or '-'}}</dd>
  <dt>状态 Status</dt><dd>{{c['status'] or '-'}}</dd>
  <dt>下次检验 Next inspection</dt><dd>{{c['next_inspection'] or '-'}}</dd>
% if c['blocked']:
  <dt>本站锁定 Blocked</dt><dd class="bad">{{c['blocked']}}</dd>
% end
% f = c['last_fill']
  <dt>上次充装 Last fill</dt>
  <dd>{{'-' if f is None else '%s %s %s kg (%s)' % (when(f['started_at']), f['status'], f['net_kg'] if f['net_kg'] is not None else '-', f['outcome'] or '-')}}</dd>
</dl>
